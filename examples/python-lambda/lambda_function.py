"""An AWS Lambda Python function, unchanged: GET /fn/python-lambda?name=Ada"""
import json


def lambda_handler(event, context):
    name = (event.get("queryStringParameters") or {}).get("name", "World")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"message": f"Hello {name}", "requestId": context.aws_request_id}),
    }
