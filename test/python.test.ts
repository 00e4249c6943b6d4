import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually, functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';

type ErrorJson = { error: { code: string; message: string } };

describe('Python functions', async () => {
  const t = await startPlatform();
  const deploy = (name: string, files: Record<string, string>, manifest = '') => t.deploy(functionDir(files, `name: ${name}\nruntime: python\n${manifest}`));

  test('Lambda: lambda_handler(event, context) with a module next to it, logs with request ids', async () => {
    await deploy('py-lambda', {
      'lambda_function.py': `from helper import greet

def lambda_handler(event, context):
    print("handling", event["rawPath"])
    name = (event.get("queryStringParameters") or {}).get("name", "World")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": greet(name, context.function_name, context.get_remaining_time_in_millis() > 0),
    }
`,
      'helper.py': 'import json\n\ndef greet(name, fn, has_time):\n    return json.dumps({"message": "Hello " + name, "function": fn, "hasTime": has_time})\n',
    });
    const res = await t.gw('/fn/py-lambda/p?name=Ada');
    assert.equal(res.status, 200);
    const requestId = res.headers.get('x-nimbus-request-id') ?? '';
    assert.deepEqual(await res.json(), { message: 'Hello Ada', function: 'py-lambda', hasTime: true });
    const lines = await eventually(async () => {
      const l = await t.logs('py-lambda', { requestId });
      return l.length > 0 ? l : undefined;
    });
    assert.equal(lines[0].line, 'handling /p');
  });

  test('Lambda: a non-response return value is a 200 JSON body; exceptions are 500 with the error text', async () => {
    await deploy('py-plain', {
      'handler.py': 'def handler(event, context):\n    if event["rawQueryString"] == "fail":\n        raise ValueError("bad value")\n    return {"ok": True}\n',
    });
    assert.deepEqual(await (await t.gw('/fn/py-plain')).json(), { ok: true });
    const res = await t.gw('/fn/py-plain?fail');
    assert.equal(res.status, 500);
    const { error } = (await res.json()) as ErrorJson;
    assert.equal(error.code, 'NIMBUS_FUNCTION_ERROR');
    assert.match(error.message, /ValueError: bad value/);
  });

  test('OpenFaaS python3-http: handle(event, context) returning statusCode, body and headers', async () => {
    await deploy(
      'py-openfaas',
      {
        'handler.py': `def handle(event, context):
    return {
        "statusCode": 201,
        "body": {"method": event.method, "path": event.path, "query": event.query, "body": event.body.decode()},
        "headers": {"X-Style": "openfaas"},
    }
`,
      },
      'style: openfaas\n',
    );
    const res = await t.gw('/fn/py-openfaas/a?x=1', { method: 'POST', body: 'hi' });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('x-style'), 'openfaas');
    assert.deepEqual(await res.json(), { method: 'POST', path: '/a', query: { x: '1' }, body: 'hi' });
  });

  test('OpenFaaS classic: handle(req) gets the body as a string, detected by its one argument', async () => {
    await deploy('py-classic', { 'handler.py': 'def handle(req):\n    return "Hello! You said: " + req\n' });
    assert.equal(await (await t.gw('/fn/py-classic', { method: 'POST', body: 'ping' })).text(), 'Hello! You said: ping');
  });

  test('WSGI: a Flask app from Debian python3-flask', async () => {
    await deploy('py-flask', {
      'app.py': `from flask import Flask, jsonify, request

app = Flask(__name__)

@app.route("/")
def index():
    return "Hello from Flask"

@app.route("/items/<int:item_id>", methods=["POST"])
def item(item_id):
    return jsonify(id=item_id, name=request.get_json()["name"], q=request.args.get("q")), 201
`,
    });
    assert.equal(await (await t.gw('/fn/py-flask')).text(), 'Hello from Flask');
    const res = await t.gw('/fn/py-flask/items/7?q=z', { method: 'POST', body: '{"name":"pen"}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 201);
    assert.deepEqual(await res.json(), { id: 7, name: 'pen', q: 'z' });
    assert.equal((await t.gw('/fn/py-flask/missing')).status, 404);
  });

  test("a syntax error fails the deploy with NIMBUS_LOAD_FAILED and Python's own text", async () => {
    const error = await t.deployRejected(
      functionDir({ 'handler.py': 'def handler(event, context)\n    return 1\n' }, 'name: py-syntax\nruntime: python\n'),
      'NIMBUS_LOAD_FAILED',
    );
    assert.match(error.message, /SyntaxError: expected ':' \(handler\.py, line 1\)/);
  });

  test('a handler name that does not exist fails the deploy with NIMBUS_HANDLER_NOT_FOUND naming what the module defines', async () => {
    const error = await t.deployRejected(
      functionDir({ 'handler.py': 'def something_else(event, context):\n    return 1\n' }, 'name: py-nohandler\nruntime: python\nhandler: handler.missing\n'),
      'NIMBUS_HANDLER_NOT_FOUND',
    );
    assert.match(error.message, /something_else/);
  });

  test('timeouts and exits fail only their own request', async () => {
    await deploy(
      'py-faults',
      {
        'handler.py': `import os, time

def handler(event, context):
    q = event["rawQueryString"]
    if q == "loop":
        while True:
            pass
    if q == "exit":
        os._exit(3)
    return {"pid": os.getpid()}
`,
      },
      'timeout: 1s\nscale:\n  concurrency: 1\n',
    );
    assert.equal((await t.gw('/fn/py-faults?loop')).status, 504);
    assert.equal((await t.gw('/fn/py-faults?exit')).status, 502);
    assert.equal((await t.gw('/fn/py-faults')).status, 200);
  });
});

testNoLeakedChildren();
