import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually, functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';

describe('OpenFaaS style (node templates): the documented examples, unchanged', async () => {
  const t = await startPlatform();
  /** Deploys a CommonJS handler.js as the template's function/handler.js. */
  const deploy = (name: string, source: string) =>
    t.deploy(functionDir({ 'handler.js': `"use strict"\n${source}` }, `name: ${name}\nstyle: openfaas\nhandler: handler.js\n`));

  test('success with a JSON body', async () => {
    await deploy(
      'of-json',
      `module.exports = (event, context) => {
        const result = { status: "You said: " + JSON.stringify(event.body) };
        context.succeed(result);
      }`,
    );
    const res = await t.gw('/fn/of-json', { method: 'POST', body: '{"hello":"world"}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(await res.text()), { status: 'You said: {"hello":"world"}' });
  });

  test('a custom status code', async () => {
    await deploy('of-404', 'module.exports = (event, context) => { context.status(404).succeed({ "message": "The record requested was not found." }); }');
    const res = await t.gw('/fn/of-404');
    assert.equal(res.status, 404);
    assert.deepEqual(JSON.parse(await res.text()), { message: 'The record requested was not found.' });
  });

  test('failure with a plain-text body is a 500', async () => {
    await deploy('of-fail', 'module.exports = (event, context) => { context.fail("Unable to process this event."); }');
    const res = await t.gw('/fn/of-fail');
    assert.equal(res.status, 500);
    assert.equal(await res.text(), 'Unable to process this event.');
  });

  test('the optional callback parameter', async () => {
    await deploy('of-cb', 'module.exports = (event, context, callback) => { let err; callback(err, { "result": "message received" }); }');
    assert.deepEqual(JSON.parse(await (await t.gw('/fn/of-cb')).text()), { result: 'message received' });
  });

  test('a redirect with a Location header', async () => {
    await deploy(
      'of-redirect',
      `module.exports = (event, context) => { context.headers({ 'Location': 'https://example.com/' }).status(307).succeed('Page has moved.'); }`,
    );
    const res = await t.gw('/fn/of-redirect', { redirect: 'manual' });
    assert.equal(res.status, 307);
    assert.equal(res.headers.get('location'), 'https://example.com/');
    assert.equal(await res.text(), 'Page has moved.');
  });

  test('an async handler that returns a value; event fields as the template sets them', async () => {
    await deploy(
      'of-event',
      `module.exports = async (event, context) => ({ body: event.body, method: event.method, path: event.path, query: event.query, ua: event.headers['user-agent'] })`,
    );
    const res = await t.gw('/fn/of-event/a/b?x=1&x=2&y=3', { method: 'PUT', body: 'plain text', headers: { 'user-agent': 'test-agent' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8', 'res.send(string) as Express does');
    assert.deepEqual(JSON.parse(await res.text()), { body: 'plain text', method: 'PUT', path: '/a/b', query: { x: ['1', '2'], y: '3' }, ua: 'test-agent' });
    const form = await t.gw('/fn/of-event', { method: 'POST', body: 'a=1&b=two', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.deepEqual(JSON.parse(await form.text()).body, { a: '1', b: 'two' });
  });

  test('a thrown error is a 500 with the error text; a JSON body that does not parse is a 400', async () => {
    await deploy('of-throw', 'module.exports = async () => { throw new Error("kaput"); }');
    const res = await t.gw('/fn/of-throw');
    assert.equal(res.status, 500);
    assert.equal(await res.text(), 'Error: kaput');
    const bad = await t.gw('/fn/of-event', { method: 'POST', body: '{not json', headers: { 'content-type': 'application/json' } });
    assert.equal(bad.status, 400);
  });
});

describe('Express-style (req, res): Google Cloud Functions and Vercel, from their documented examples', async () => {
  const t = await startPlatform();

  test('Cloud Functions: exports.helloHttp reads query and parsed JSON body', async () => {
    await t.deploy(
      functionDir(
        {
          // biome-ignore lint/suspicious/noTemplateCurlyInString: this is the function's source text
          'index.js': "exports.helloHttp = (req, res) => { res.send(`Hello ${req.query.name || req.body.name || 'World'}!`); };",
          'package.json': '{"main":"index.js"}',
        },
        'name: gcf-hello\nstyle: gcf\nhandler: index.helloHttp\n',
      ),
    );
    assert.equal(await (await t.gw('/fn/gcf-hello?name=Ada')).text(), 'Hello Ada!');
    const post = await t.gw('/fn/gcf-hello', { method: 'POST', body: '{"name":"Grace"}', headers: { 'content-type': 'application/json' } });
    assert.equal(post.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(await post.text(), 'Hello Grace!');
  });

  test('Vercel: res.status().json() with req.body, req.query and req.cookies', async () => {
    await t.deploySource(
      'vercel-json',
      'export default function handler(req, res) { res.status(201).json({ body: req.body, query: req.query, cookies: req.cookies, method: req.method, ua: req.get("user-agent") }); }',
      'style: vercel\n',
    );
    const res = await t.gw('/fn/vercel-json?a=1', {
      method: 'POST',
      body: 'x=1&y=2',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: 'session=abc; theme=dark', 'user-agent': 'ua' },
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.deepEqual(await res.json(), { body: { x: '1', y: '2' }, query: { a: '1' }, cookies: { session: 'abc', theme: 'dark' }, method: 'POST', ua: 'ua' });
  });

  test('Vercel: Web-standard method exports, with 405 for the others', async () => {
    await t.deploySource(
      'vercel-web',
      "export function GET(request) { return new Response('Hello from Vercel! ' + new URL(request.url).pathname); }",
      'style: vercel\n',
    );
    assert.equal(await (await t.gw('/fn/vercel-web/p')).text(), 'Hello from Vercel! /p');
    const post = await t.gw('/fn/vercel-web', { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET');
  });

  test('a response written in pieces streams; redirect and headers work', async () => {
    await t.deploySource(
      'express-stream',
      `export default async function handler(req, res) {
        if (req.path === '/go') return res.redirect(301, '/elsewhere');
        res.setHeader('x-kind', 'stream');
        res.write('a;');
        await new Promise((r) => setTimeout(r, 30));
        res.write('b;');
        res.end('c');
      }`,
      'style: vercel\n',
    );
    const res = await t.gw('/fn/express-stream');
    assert.equal(res.headers.get('x-kind'), 'stream');
    assert.equal(await res.text(), 'a;b;c');
    const go = await t.gw('/fn/express-stream/go', { redirect: 'manual' });
    assert.equal(go.status, 301);
    assert.equal(go.headers.get('location'), '/elsewhere');
  });

  test('a handler that throws before answering is a 500 with the function error code', async () => {
    await t.deploySource('express-throw', 'export default (req, res) => { throw new RangeError("bad range"); }', 'style: gcf\n');
    const res = await t.gw('/fn/express-throw');
    assert.equal(res.status, 500);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(error.code, 'NIMBUS_FUNCTION_ERROR');
    assert.match(error.message, /RangeError: bad range/);
  });
});

describe('Cloud Functions code that uses @google-cloud/functions-framework, unchanged', async () => {
  const t = await startPlatform();
  // The package.json lists the SDK, as real projects do; it is not installed: the build maps it to Nimbus's shim.
  const pkg = JSON.stringify({ main: 'index.js', dependencies: { '@google-cloud/functions-framework': '^3.0.0' } });

  test('functions.http registers the handler; style is detected', async () => {
    await t.deploy(
      functionDir(
        {
          'index.js':
            // biome-ignore lint/suspicious/noTemplateCurlyInString: this is the function's source text
            "const functions = require('@google-cloud/functions-framework');\nfunctions.http('helloHttp', (req, res) => { res.send(`Hello ${req.query.name || req.body.name || 'World'}!`); });",
          'package.json': pkg,
        },
        'name: ff-http\n',
      ),
    );
    assert.equal(await (await t.gw('/fn/ff-http?name=Ada')).text(), 'Hello Ada!');
  });

  test('functions.cloudEvent receives binary and structured CloudEvents and answers 204', async () => {
    await t.deploy(
      functionDir(
        {
          'index.js': `const functions = require('@google-cloud/functions-framework');
          functions.cloudEvent('helloCloudEvent', (cloudEvent) => {
            console.log(JSON.stringify({ type: cloudEvent.type, source: cloudEvent.source, id: cloudEvent.id, data: cloudEvent.data }));
          });`,
          'package.json': pkg,
        },
        'name: ff-events\nhandler: index.helloCloudEvent\n',
      ),
    );
    const binary = await t.gw('/fn/ff-events', {
      method: 'POST',
      headers: { 'ce-specversion': '1.0', 'ce-id': 'a1', 'ce-source': '/test', 'ce-type': 'com.example.created', 'content-type': 'application/json' },
      body: '{"n":1}',
    });
    assert.equal(binary.status, 204);
    const structured = await t.gw('/fn/ff-events', {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({ specversion: '1.0', id: 'b2', source: '/test', type: 'com.example.deleted', data: { n: 2 } }),
    });
    assert.equal(structured.status, 204);
    const notAnEvent = await t.gw('/fn/ff-events', { method: 'POST', body: 'hello' });
    assert.equal(notAnEvent.status, 400);
    const received = await eventually(async () => {
      const lines = (await t.logs('ff-events')).map((l) => JSON.parse(l.line));
      return lines.length === 2 ? lines : undefined;
    });
    assert.deepEqual(received, [
      { type: 'com.example.created', source: '/test', id: 'a1', data: { n: 1 } },
      { type: 'com.example.deleted', source: '/test', id: 'b2', data: { n: 2 } },
    ]);
    const two = await t.deployRejected(
      functionDir(
        {
          'index.js': `const functions = require('@google-cloud/functions-framework');
          functions.http('a', (req, res) => res.send('a'));
          functions.http('b', (req, res) => res.send('b'));`,
          'package.json': pkg,
        },
        'name: ff-two\n',
      ),
      'NIMBUS_HANDLER_NOT_FOUND',
    );
    assert.match(two.message, /registers several functions \(a, b\)/);
  });
});

describe('Azure Functions v4 (app.http from @azure/functions), unchanged', async () => {
  const t = await startPlatform();
  const pkg = JSON.stringify({ main: 'src/functions/httpTrigger1.js', dependencies: { '@azure/functions': '^4.0.0' } });

  test('the documented HTTP trigger: query, text body, context.log', async () => {
    await t.deploy(
      functionDir(
        {
          'src/functions/httpTrigger1.js': `const { app } = require('@azure/functions');
app.http('httpTrigger1', {
    methods: ['GET', 'POST'],
    authLevel: 'anonymous',
    handler: async (request, context) => {
        context.log(\`Http function processed request for url "\${request.url}"\`);
        const name = request.query.get('name') || await request.text() || 'world';
        return { body: \`Hello, \${name}!\` };
    }
});`,
          'package.json': pkg,
        },
        'name: az-http\nhandler: src/functions/httpTrigger1.js\n',
      ),
    );
    assert.equal(await (await t.gw('/fn/az-http?name=Ada')).text(), 'Hello, Ada!');
    assert.equal(await (await t.gw('/fn/az-http', { method: 'POST', body: 'Grace' })).text(), 'Hello, Grace!');
    const put = await t.gw('/fn/az-http', { method: 'PUT', body: 'x' });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get('allow'), 'GET, POST');
    const logs = await eventually(async () => {
      const lines = await t.logs('az-http');
      return lines.some((l) => l.line.startsWith('Http function processed request for url')) ? lines : undefined;
    });
    assert.ok(logs.length > 0);
  });

  test('jsonBody, status, headers and cookies in the response; HttpResponse', async () => {
    await t.deploy(
      functionDir(
        {
          'index.js': `const { app, HttpResponse } = require('@azure/functions');
app.post('create', async (request) => {
  const item = await request.json();
  if (!item.name) return new HttpResponse({ status: 400, body: 'name is required' });
  return { status: 201, jsonBody: { created: item.name }, headers: { 'x-item': item.name }, cookies: [{ name: 'last', value: item.name, httpOnly: true }] };
});`,
          'package.json': JSON.stringify({ main: 'index.js' }),
        },
        'name: az-json\n',
      ),
    );
    const res = await t.gw('/fn/az-json', { method: 'POST', body: '{"name":"pen"}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('x-item'), 'pen');
    assert.equal(res.headers.get('set-cookie'), 'last=pen; HttpOnly');
    assert.deepEqual(await res.json(), { created: 'pen' });
    const bad = await t.gw('/fn/az-json', { method: 'POST', body: '{}' });
    assert.equal(bad.status, 400);
    assert.equal(await bad.text(), 'name is required');
  });
});

describe('Netlify, OpenWhisk, Knative and Fn: documented examples, unchanged', async () => {
  const t = await startPlatform();
  const cjs = (name: string, file: string, source: string, manifest = '') =>
    t.deploy(functionDir({ [file]: source, 'package.json': JSON.stringify({ main: file }) }, `name: ${name}\nhandler: ${file}\n${manifest}`));

  test('Netlify v2: default (req, context) with config.path params, detected', async () => {
    await t.deploySource(
      'netlify-v2',
      `export default async (req, context) => {
        const { city, country } = context.params;
        return new Response(\`Travel guide for \${city}, \${country}\`);
      };
      export const config = { path: "/travel-guide/:city/:country" };`,
    );
    assert.equal(await (await t.gw('/fn/netlify-v2/travel-guide/paris/france')).text(), 'Travel guide for paris, france');
  });

  test('Netlify v1: exports.handler with rawUrl and REST-style events', async () => {
    await cjs(
      'netlify-v1',
      'hello.js',
      'exports.handler = async function (event, context) { return { statusCode: 200, body: JSON.stringify({ message: "Hello World", path: event.path, q: event.queryStringParameters, raw: event.rawQuery }) }; };',
      'style: netlify\n',
    );
    assert.deepEqual(await (await t.gw('/fn/netlify-v1/x?a=1')).json(), { message: 'Hello World', path: '/x', q: { a: '1' }, raw: 'a=1' });
  });

  test('OpenWhisk web action: main(params) with query and JSON body merged, detected', async () => {
    await cjs(
      'ow-hello',
      'hello.js',
      `function main({name, __ow_method, __ow_path}) {
        var msg = 'you did not tell me who you are.';
        if (name) { msg = \`hello \${name}!\` }
        return { body: \`<html><body><h3>\${msg}</h3></body></html>\`, headers: { 'x-method': __ow_method, 'x-path': __ow_path } };
      }
      exports.main = main;`,
    );
    const res = await t.gw('/fn/ow-hello/p?name=Ada');
    assert.equal(await res.text(), '<html><body><h3>hello Ada!</h3></body></html>');
    assert.equal(res.headers.get('x-method'), 'get');
    assert.equal(res.headers.get('x-path'), '/p');
    const posted = await t.gw('/fn/ow-hello', { method: 'POST', body: '{"name":"Grace"}', headers: { 'content-type': 'application/json' } });
    assert.equal(await posted.text(), '<html><body><h3>hello Grace!</h3></body></html>');
    await cjs('ow-json', 'a.js', 'exports.main = (params) => ({ greeting: "hi " + params.who });');
    assert.deepEqual(await (await t.gw('/fn/ow-json?who=you')).json(), { greeting: 'hi you' });
  });

  test('Knative: handle(context, body) returning an object, a string, or nothing; detected', async () => {
    await cjs(
      'kn-fn',
      'index.js',
      `const handle = async (context, body) => {
        if (context.query.mode === 'text') return 'plain';
        if (context.query.mode === 'none') return undefined;
        if (context.query.mode === 'full') return { statusCode: 201, headers: { 'X-Kn': 'yes' }, body: { got: body } };
        return { query: context.query, method: context.method };
      };
      module.exports = { handle };`,
    );
    const obj = await t.gw('/fn/kn-fn?a=1');
    assert.equal(obj.headers.get('access-control-allow-origin'), '*');
    assert.deepEqual(await obj.json(), { query: { a: '1' }, method: 'GET' });
    assert.equal(await (await t.gw('/fn/kn-fn?mode=text')).text(), 'plain');
    assert.equal((await t.gw('/fn/kn-fn?mode=none')).status, 204);
    const full = await t.gw('/fn/kn-fn?mode=full', { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
    assert.equal(full.status, 201);
    assert.equal(full.headers.get('x-kn'), 'yes');
    assert.deepEqual(await full.json(), { got: { n: 1 } });
  });

  test('Knative: a CloudEvent in, a CloudEvent out (binary mode)', async () => {
    await cjs(
      'kn-events',
      'index.js',
      `module.exports = { handle: async (context, event) => ({ specversion: '1.0', id: 'reply-' + event.id, source: '/kn-events', type: 'com.example.reply', data: { echoed: event.data } }) };`,
    );
    const res = await t.gw('/fn/kn-events', {
      method: 'POST',
      headers: { 'ce-specversion': '1.0', 'ce-id': 'e1', 'ce-source': '/src', 'ce-type': 'com.example.ping', 'content-type': 'application/json' },
      body: '{"x":42}',
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('ce-id'), 'reply-e1');
    assert.equal(res.headers.get('ce-type'), 'com.example.reply');
    assert.deepEqual(await res.json(), { echoed: { x: 42 } });
  });

  test('Fn: fdk.handle from @fnproject/fdk, detected', async () => {
    await t.deploy(
      functionDir(
        {
          'func.js': `const fdk = require('@fnproject/fdk');
fdk.handle(function(input){
  let name = 'World';
  if (input.name) { name = input.name; }
  return {'message': 'Hello ' + name}
})`,
          'package.json': JSON.stringify({ main: 'func.js', dependencies: { '@fnproject/fdk': '>=0.0.0' } }),
        },
        'name: fn-hello\nhandler: func.js\n',
      ),
    );
    const res = await t.gw('/fn/fn-hello', { method: 'POST', body: '{"name":"Ada"}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.deepEqual(await res.json(), { message: 'Hello Ada' });
  });
});

describe('Fission Node environment', async () => {
  const t = await startPlatform();
  const deploy = (name: string, source: string) =>
    t.deploy(functionDir({ 'hello.js': source, 'package.json': '{"main":"hello.js"}' }, `name: ${name}\nstyle: fission\nhandler: hello.js\n`));

  test('the documented hello world: return { status, body }', async () => {
    await deploy('fission-hello', 'module.exports = async function(context) { return { status: 200, body: "hello, world!\\n" }; }');
    const res = await t.gw('/fn/fission-hello');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'hello, world!\n');
  });

  test('context.request is the request; headers in the result; the callback form', async () => {
    await deploy(
      'fission-echo',
      `module.exports = async function(context) {
        const b = context.request.body;
        return { status: 202, headers: { 'x-from': 'fission' }, body: { got: b, method: context.request.method, q: context.request.query } };
      }`,
    );
    const res = await t.gw('/fn/fission-echo?k=v', { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('x-from'), 'fission');
    assert.deepEqual(await res.json(), { got: { n: 1 }, method: 'POST', q: { k: 'v' } });
    await deploy('fission-cb', 'module.exports = function(context, callback) { callback(201, "made", { "content-type": "text/plain" }); }');
    const cb = await t.gw('/fn/fission-cb');
    assert.equal(cb.status, 201);
    assert.equal(await cb.text(), 'made');
  });
});

describe('style selection', async () => {
  const t = await startPlatform();

  test('a bare exported function without style: is refused at deploy with a hint to set it', async () => {
    const error = await t.deployRejected(functionDir({ 'index.js': 'module.exports = async (a, b) => "hi";' }, 'name: bare\n'), 'NIMBUS_HANDLER_NOT_FOUND');
    assert.match(error.message, /set `style:` in nimbus.yaml/);
  });

  test('style: workers on a module without fetch names what is missing', async () => {
    const error = await t.deployRejected(
      functionDir({ 'index.js': 'export const handler = async () => "x";' }, 'name: nofetch\nstyle: workers\n'),
      'NIMBUS_HANDLER_NOT_FOUND',
    );
    assert.match(error.message, /style workers needs `export default \{ fetch/);
  });

  test('the deploy reports the style it detected, and the listing shows it', async () => {
    const cases: [string, Record<string, string>, string, string][] = [
      ['det-workers', { 'index.js': 'export default { fetch: () => new Response("x") };' }, '', 'workers'],
      ['det-lambda', { 'index.js': 'export const handler = async () => ({ statusCode: 200, body: "x" });' }, '', 'lambda'],
      ['det-netlify', { 'index.js': 'export default async () => new Response("x"); export const config = { path: "/x" };' }, '', 'netlify'],
      ['det-openfaas', { 'index.js': 'module.exports = async (event, context) => context.status(200).succeed("x");' }, 'style: openfaas\n', 'openfaas'],
    ];
    for (const [name, files, manifest, style] of cases) {
      const body = (await t.deploy(functionDir(files, `name: ${name}\n${manifest}`))) as { style?: string };
      assert.equal(body.style, style, name);
      const info = (await t.functionInfo(name)) as { style?: string };
      assert.equal(info.style, style, name);
    }
    // Redeploying the same code is a no-op that still names the style.
    const again = (await t.deploy(functionDir({ 'index.js': 'export default { fetch: () => new Response("x") };' }, 'name: det-workers\n'))) as {
      created: boolean;
      style?: string;
    };
    assert.deepEqual([again.created, again.style], [false, 'workers']);
  });

  test('an unknown style is a manifest error listing the styles', async () => {
    await assert.rejects(
      t.deploySource('weird', 'export default { fetch: () => new Response("x") };', 'style: cobol\n'),
      /style must be one of workers, lambda, openfaas, gcf, vercel, fission, azure, netlify, openwhisk, knative, fn/,
    );
  });
});

testNoLeakedChildren();
