"""An OpenFaaS classic python3 function, unchanged: POST /fn/python-openfaas-classic with a text body"""


def handle(req):
    """handle a request to the function
    Args:
        req (str): request body
    """
    return "You said: " + req
