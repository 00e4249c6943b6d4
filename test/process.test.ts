import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';

type ErrorJson = { error: { code: string; message: string } };

const PY_HTTP = `import http.server, json, os

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"lang": "python", "path": self.path, "service": os.environ.get("K_SERVICE")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`;

const NODE_HTTP = `require('node:http').createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => res.end(JSON.stringify({ lang: 'node', method: req.method, body })));
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const PY_BOOTSTRAP = `#!/usr/bin/env python3
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
while True:
    with urllib.request.urlopen(api + "/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    if event.get("rawQueryString") == "fail":
        req = urllib.request.Request(api + "/invocation/" + rid + "/error", data=json.dumps({"errorMessage": "it broke", "errorType": "Boom"}).encode(), method="POST")
    else:
        out = {"statusCode": 200, "body": json.dumps({"lang": "python", "path": event["rawPath"], "handler": os.environ["_HANDLER"]})}
        req = urllib.request.Request(api + "/invocation/" + rid + "/response", data=json.dumps(out).encode(), method="POST")
    urllib.request.urlopen(req).read()
`;

const NODE_BOOTSTRAP = `#!/usr/bin/env node
const api = 'http://' + process.env.AWS_LAMBDA_RUNTIME_API + '/2018-06-01/runtime';
(async () => {
  for (;;) {
    const next = await fetch(api + '/invocation/next');
    const id = next.headers.get('lambda-runtime-aws-request-id');
    const event = await next.json();
    await fetch(api + '/invocation/' + id + '/response', { method: 'POST', body: JSON.stringify({ lang: 'node', method: event.requestContext.http.method }) });
  }
})();
`;

describe('any language (runtime: process)', async () => {
  const t = await startPlatform();
  const deploy = (name: string, files: Record<string, string>, manifest: string) =>
    t.deploy(functionDir(files, `name: ${name}\nruntime: process\n${manifest}`));

  test('HTTP on $PORT: a Python server and a Node server', async () => {
    await deploy('proc-py-http', { 'server.py': PY_HTTP }, 'command: python3 server.py\n');
    assert.deepEqual(await (await t.gw('/fn/proc-py-http/a?b=1')).json(), { lang: 'python', path: '/a?b=1', service: 'proc-py-http' });
    await deploy('proc-node-http', { 'server.cjs': NODE_HTTP }, 'command: [node, server.cjs]\n');
    assert.deepEqual(await (await t.gw('/fn/proc-node-http', { method: 'POST', body: 'ping' })).json(), { lang: 'node', method: 'POST', body: 'ping' });
  });

  test('stdin/stdout per request: a shell script and a Python script', async () => {
    await deploy(
      'proc-sh',
      { 'handler.sh': '#!/bin/sh\necho "method=$Http_Method path=$Http_Path query=$Http_Query"\ncat\n' },
      'style: stdio\ncommand: ./handler.sh\n',
    );
    assert.equal(await (await t.gw('/fn/proc-sh/x?y=1', { method: 'POST', body: 'body text' })).text(), 'method=POST path=/x query=y=1\nbody text');
    await deploy('proc-py-stdio', { 'handler.py': 'import sys\nprint(sys.stdin.read().upper(), end="")\n' }, 'style: stdio\ncommand: python3 handler.py\n');
    assert.equal(await (await t.gw('/fn/proc-py-stdio', { method: 'POST', body: 'shout' })).text(), 'SHOUT');
    await deploy('proc-sh-fail', { 'fail.sh': '#!/bin/sh\necho "no such thing" >&2\nexit 4\n' }, 'style: stdio\ncommand: ./fail.sh\n');
    const res = await t.gw('/fn/proc-sh-fail');
    assert.equal(res.status, 500);
    assert.equal(await res.text(), 'exit code 4: no such thing');
  });

  test('the Lambda Runtime API: a Python bootstrap and a Node bootstrap', async () => {
    await deploy('proc-py-lambda', { bootstrap: PY_BOOTSTRAP }, 'style: lambda-runtime\nhandler: function.handler\n');
    assert.deepEqual(await (await t.gw('/fn/proc-py-lambda/p')).json(), { lang: 'python', path: '/p', handler: 'function.handler' });
    const failed = await t.gw('/fn/proc-py-lambda?fail');
    assert.equal(failed.status, 500);
    const { error } = (await failed.json()) as ErrorJson;
    assert.equal(error.code, 'NIMBUS_FUNCTION_ERROR');
    assert.match(error.message, /Boom: it broke/);
    await deploy('proc-node-lambda', { bootstrap: NODE_BOOTSTRAP }, 'style: lambda-runtime\n');
    assert.deepEqual(await (await t.gw('/fn/proc-node-lambda', { method: 'PUT', body: 'x' })).json(), { lang: 'node', method: 'PUT' });
  });

  test('a bootstrap that exits at once and a server that never listens fail the deploy clearly, never hang', async () => {
    const rejected = (name: string, files: Record<string, string>, manifest: string) =>
      t.deployRejected(functionDir(files, `name: ${name}\nruntime: process\n${manifest}`), 'NIMBUS_LOAD_FAILED');
    const e1 = await rejected(
      'proc-exit',
      { bootstrap: '#!/bin/sh\necho "libfoo.so: cannot open shared object file" >&2\nexit 2\n' },
      'style: lambda-runtime\n',
    );
    assert.match(e1.message, /exited \(exit code 2\) before it could ask the Runtime API/);
    assert.match(e1.message, /libfoo\.so: cannot open shared object file/, "the program's own stderr is in the error");
    const e2 = await rejected('proc-deaf', { 'deaf.sh': '#!/bin/sh\necho "waiting for a database" >&2\nsleep 60\n' }, 'command: ./deaf.sh\n');
    assert.match(e2.message, /did not listen on \$PORT within 10000 ms/);
    assert.match(e2.message, /waiting for a database/);
    const e3 = await rejected('proc-nofile', { 'x.sh': 'true' }, 'command: [./missing-binary]\n');
    assert.match(e3.message, /missing-binary|ENOENT/);
  });

  test('a manifest for runtime process without a command is refused at deploy', async () => {
    await assert.rejects(deploy('proc-nocmd', { 'x.sh': 'true' }, ''), /runtime process needs command/);
    await assert.rejects(deploy('proc-noboot', { 'x.sh': 'true' }, 'style: lambda-runtime\n'), /needs an executable file named \\"bootstrap\\"/);
  });
});

testNoLeakedChildren();
