"""A Flask application served as WSGI: GET /fn/python-flask/hello/Ada"""
from flask import Flask

app = Flask(__name__)


@app.route("/hello/<name>")
def hello(name):
    return f"Hello {name} from Flask"
