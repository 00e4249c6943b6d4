"""An OpenFaaS python3-http function, unchanged: POST /fn/python-openfaas with a JSON body"""
import json


def handle(event, context):
    data = json.loads(event.body or b"{}")
    return {
        "statusCode": 200,
        "body": {"message": f"Hello {data.get('name', 'World')}", "method": event.method},
        "headers": {"Content-Type": "application/json"},
    }
