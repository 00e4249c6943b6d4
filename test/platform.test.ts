import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { eventually, functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';

const HELLO_TS = `
export default {
  async fetch(request: Request, env: Record<string, string>): Promise<Response> {
    const url = new URL(request.url);
    console.log('hello log line', url.pathname);
    return Response.json({ path: url.pathname, query: url.search, greeting: env.GREETING, pid: process.pid });
  },
};`;

describe('deploy, invoke, redeploy, remove', async () => {
  const t = await startPlatform();

  test('deploys a TypeScript function and invokes it over HTTP', async () => {
    const dir = functionDir({ 'index.ts': HELLO_TS }, 'name: greet\nenv:\n  GREETING: hi\n');
    const deployed = await t.deploy(dir);
    assert.equal(deployed.created, true);
    assert.equal(deployed.function.version, 1);
    const res = await t.gw('/fn/greet/some/path?x=1');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('x-nimbus-request-id') ?? '', /^[0-9a-f-]{36}$/);
    const body = (await res.json()) as { path: string; query: string; greeting: string };
    assert.deepEqual({ path: body.path, query: body.query, greeting: body.greeting }, { path: '/some/path', query: '?x=1', greeting: 'hi' });
  });

  test('redeploying identical code is a no-op; changed code becomes a new version', async () => {
    const dir = functionDir({ 'index.ts': HELLO_TS }, 'name: greet\nenv:\n  GREETING: hi\n');
    const same = await t.deploy(dir);
    assert.equal(same.created, false);
    assert.equal(same.function.version, 1);
    const changed = await t.deploy(dir, { env: { GREETING: 'hello again' } });
    assert.equal(changed.created, true);
    assert.equal(changed.function.version, 2);
    const body = (await (await t.gw('/fn/greet')).json()) as { greeting: string };
    assert.equal(body.greeting, 'hello again');
  });

  test('the Lambda style gets an API Gateway 2.0 event and its result is mapped', async () => {
    const dir = functionDir(
      {
        'index.ts': `export const handler = async (event: any, context: any) => ({
          statusCode: 201,
          headers: { 'x-style': 'lambda' },
          cookies: ['a=1'],
          body: JSON.stringify({ version: event.version, rawPath: event.rawPath, q: event.queryStringParameters, method: event.requestContext.http.method,
            body: event.body, b64: event.isBase64Encoded, cookies: event.cookies, fn: context.functionName, left: context.getRemainingTimeInMillis() }),
        });`,
      },
      'name: lam\nhandler: index.handler\ntimeout: 10s\n',
    );
    await t.deploy(dir);
    const res = await t.gw('/fn/lam/a/b?x=1&x=2', { method: 'POST', body: '{"k":1}', headers: { 'content-type': 'application/json', cookie: 'c=3; d=4' } });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('x-style'), 'lambda');
    assert.equal(res.headers.get('set-cookie'), 'a=1');
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.version, '2.0');
    assert.equal(body.rawPath, '/a/b');
    assert.deepEqual(body.q, { x: '1,2' });
    assert.equal(body.method, 'POST');
    assert.equal(body.body, '{"k":1}');
    assert.equal(body.b64, false);
    assert.deepEqual(body.cookies, ['c=3', 'd=4']);
    assert.equal(body.fn, 'lam');
    assert.ok((body.left as number) > 8_000 && (body.left as number) <= 10_000);
  });

  test('payloadFormat 1.0 sends REST API events and needs a proxy response', async () => {
    await t.deploySource(
      'lam-v1',
      `export const handler = async (event) => {
        if (event.queryStringParameters && event.queryStringParameters.plain) return 'not a proxy response';
        return { statusCode: 200, multiValueHeaders: { 'x-multi': ['a', 'b'] }, body: JSON.stringify(event) };
      };`,
      'handler: index.handler\npayloadFormat: 1.0\n',
    );
    const res = await t.gw('/fn/lam-v1/items/7?tag=a&tag=b', { method: 'POST', body: 'hi', headers: { 'content-type': 'text/plain' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-multi'), 'a, b');
    const event = (await res.json()) as Record<string, unknown>;
    assert.equal(event.httpMethod, 'POST');
    assert.equal(event.path, '/items/7');
    assert.equal(event.resource, '/{proxy+}');
    assert.deepEqual(event.pathParameters, { proxy: 'items/7' });
    assert.deepEqual(event.queryStringParameters, { tag: 'b' });
    assert.deepEqual(event.multiValueQueryStringParameters, { tag: ['a', 'b'] });
    assert.equal((event.headers as Record<string, string>)['content-type'], 'text/plain');
    assert.equal(event.body, 'hi');
    assert.equal(event.isBase64Encoded, false);
    const plain = await t.gw('/fn/lam-v1?plain=1');
    assert.equal(plain.status, 502);
    assert.equal(((await plain.json()) as { error: { code: string } }).error.code, 'NIMBUS_INVALID_RESPONSE');
  });

  test('a Lambda result that is not a response object becomes a 200 JSON body', async () => {
    await t.deploySource('plain', 'export const handler = async () => ({ hello: "world" });', 'handler: index.handler\n');
    const res = await t.gw('/fn/plain');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.deepEqual(await res.json(), { hello: 'world' });
  });

  test('Responses from fetch() are Responses, and can be returned as they are', async () => {
    await t.deploySource(
      'proxy',
      `export default { async fetch(request) {
        const upstream = await fetch('data:application/json,' + encodeURIComponent(JSON.stringify({ hello: 'world' })));
        if (!(upstream instanceof Response)) return new Response('not a Response', { status: 500 });
        return upstream;
      } };`,
    );
    // A data: URL: a sandboxed function cannot reach the platform's own loopback (docs/security.md).
    const res = await t.gw('/fn/proxy');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { hello: 'world' });
  });

  test('request.signal aborts when the client goes away', async () => {
    await t.deploySource(
      'abortable',
      `let aborted = 0;
      export default { async fetch(request) {
        if (new URL(request.url).searchParams.has('count')) return new Response(String(aborted));
        request.signal.addEventListener('abort', () => { aborted++; });
        console.log('started');
        await new Promise((r) => setTimeout(r, 5000));
        return new Response('late');
      } };`,
      'scale:\n  max: 1\n',
    );
    const controller = new AbortController();
    const pending = t.gw('/fn/abortable', { signal: controller.signal }).catch(() => 'aborted');
    // Abort once the function runs (on a loaded machine the cold start can take a while).
    await eventually(async () => (await t.logs('abortable')).some((l) => l.line === 'started') || undefined, 10_000, 'the request to start');
    controller.abort();
    assert.equal(await pending, 'aborted');
    await eventually(async () => (await (await t.gw('/fn/abortable?count')).text()) === '1', 3_000, 'the abort to reach the function');
  });

  test('request and response bodies stream through', async () => {
    await t.deploySource('echo', 'export default { fetch: (req) => new Response(req.body, { headers: { "content-type": "application/octet-stream" } }) };');
    const payload = Buffer.alloc(3 * 1024 * 1024, 7);
    payload[12345] = 1;
    const res = await t.gw('/fn/echo', { method: 'POST', body: payload });
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(payload));
    // A response written in pieces arrives in pieces, before the function finishes.
    await t.deploySource(
      'drip',
      `export default { fetch() {
        let n = 0;
        const stream = new ReadableStream({ async pull(c) { if (n === 3) return c.close(); c.enqueue(new TextEncoder().encode('chunk' + n++ + ';')); await new Promise(r => setTimeout(r, 30)); } });
        return new Response(stream);
      } };`,
    );
    const drip = await t.gw('/fn/drip');
    assert.equal(await drip.text(), 'chunk0;chunk1;chunk2;');
  });

  test("a slow client pauses the function's response stream instead of filling the gateway", async () => {
    await t.deploySource(
      'firehose',
      `let produced = 0;
      export default { fetch(request) {
        if (new URL(request.url).searchParams.has('count')) return new Response(String(produced));
        produced = 0;
        const chunk = new Uint8Array(64 * 1024);
        const stream = new ReadableStream({ pull(c) { if (produced === 1024) return c.close(); produced++; c.enqueue(chunk); } });
        return new Response(stream);
      } };`,
    );
    const { request } = await import('node:http');
    const received = await new Promise<number>((resolve, reject) => {
      request(`${t.platform.gatewayUrl}/fn/firehose`, (res) => {
        res.pause();
        setTimeout(async () => {
          const produced = Number(await (await t.gw('/fn/firehose?count')).text());
          try {
            // 1024 chunks (64 MB) exist; with the client stalled only what fits in
            // socket buffers on the way may have been produced.
            assert.ok(produced < 400, `the function produced ${produced} of 1024 chunks for a stalled client`);
          } catch (err) {
            reject(err);
          }
          let bytes = 0;
          res.on('data', (c: Buffer) => {
            bytes += c.length;
          });
          res.on('end', () => resolve(bytes));
          res.resume();
        }, 700);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(received, 64 * 1024 * 1024);
  });

  test('logs are captured line by line with the request id', async () => {
    const res = await t.gw('/fn/greet/logme');
    const requestId = res.headers.get('x-nimbus-request-id');
    await res.text();
    const lines = await eventually(async () => {
      const logs = await t.logs('greet', { requestId: requestId ?? '' });
      return logs.length > 0 ? logs : undefined;
    });
    assert.equal(lines[0].line, 'hello log line /logme');
    assert.equal(lines[0].requestId, requestId);
    assert.equal(lines[0].stream, 'stdout');
  });

  test('removing a function stops its instances and makes it 404', async () => {
    const before = await t.functionInfo('greet');
    assert.ok(before.instances.ready >= 1);
    const bundles = readdirSync(join(t.platform.dataDir, 'bundles'));
    const { function: info } = (await (await t.admin('GET', '/v1/functions/greet')).json()) as { function: { versions: { sha256: string }[] } };
    // Its two versions differ only in env, which is no part of the code's bundle: they share one folder.
    const own = new Set(info.versions.map((v) => v.sha256));
    assert.equal(own.size, 1);
    const del = await t.admin('DELETE', '/v1/functions/greet');
    assert.equal(del.status, 204);
    const left = readdirSync(join(t.platform.dataDir, 'bundles'));
    assert.deepEqual(
      left,
      bundles.filter((b) => !own.has(b)),
      "the function's bundle is deleted, no other",
    );
    const res = await t.gw('/fn/greet');
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'NIMBUS_FUNCTION_NOT_FOUND');
    assert.equal((await t.admin('GET', '/v1/functions/greet')).status, 404);
    // Redeploying the same name starts again at version 1.
    const again = await t.deploy(functionDir({ 'index.ts': HELLO_TS }, 'name: greet\n'));
    assert.equal(again.function.version, 1);
    assert.equal((await t.gw('/fn/greet')).status, 200);
  });
});

describe('scaling', async () => {
  const t = await startPlatform({ warmPoolSize: 2 });

  test('an idle function scales to zero processes', async () => {
    await t.deploySource(
      'idle',
      `const INSTANCE = Math.random().toString(36).slice(2); export default { fetch: () => new Response(INSTANCE) };`,
      'scale:\n  idleTimeout: 300ms\n',
    );
    const id = await (await t.gw('/fn/idle')).text();
    const pids = [...(t.platform.runtime.current('idle')?.instances ?? [])].map((i) => i.pid);
    assert.equal(pids.length, 1);
    assert.ok(pids[0] !== undefined && existsSync(`/proc/${pids[0]}`), 'the instance runs as a process');
    assert.equal((await t.functionInfo('idle')).instances.ready, 1);
    await eventually(async () => (await t.functionInfo('idle')).instances.ready === 0, 5_000, 'scale to zero');
    await eventually(() => !existsSync(`/proc/${pids[0]}`), 3_000, 'the instance process to exit');
    // The next request starts a new instance.
    const next = await t.gw('/fn/idle');
    assert.equal(next.status, 200);
    assert.notEqual(await next.text(), id);
  });

  test('concurrent first requests share one cold start', async () => {
    await t.deploySource(
      'burst',
      'const INSTANCE = Math.random().toString(36).slice(2); export default { async fetch() { await new Promise(r => setTimeout(r, 50)); return new Response(INSTANCE); } };',
      'scale:\n  concurrency: 20\n  max: 5\n',
    );
    const pids = await Promise.all(Array.from({ length: 20 }, async () => (await t.gw('/fn/burst')).text()));
    assert.equal(new Set(pids).size, 1, 'all 20 requests were served by one instance');
    const info = await t.functionInfo('burst');
    assert.equal(info.instances.coldStarts, 1);
  });

  test('more requests than one instance takes start more instances, up to max', async () => {
    await t.deploySource(
      'wide',
      'const INSTANCE = Math.random().toString(36).slice(2); export default { async fetch() { await new Promise(r => setTimeout(r, 600)); return new Response(INSTANCE); } };',
      'scale:\n  concurrency: 2\n  max: 3\n',
    );
    const pids = await Promise.all(Array.from({ length: 10 }, async () => (await t.gw('/fn/wide')).text()));
    const distinct = new Set(pids).size;
    assert.ok(distinct >= 2 && distinct <= 3, `expected 2-3 instances, saw ${distinct}`);
    assert.ok((await t.functionInfo('wide')).instances.ready <= 3);
  });

  test('requests waiting for a version that a deploy replaces are served by the new one', async () => {
    const dir = functionDir(
      // Slow enough that the second deploy (which loads the new version once) ends while the first request still runs.
      { 'index.js': 'export default { async fetch() { await new Promise(r => setTimeout(r, 2000)); return new Response(process.env.V); } };' },
      'name: handover\nscale:\n  concurrency: 1\n  max: 1\n',
    );
    await t.deploy(dir, { env: { V: 'one' } });
    const first = t.gw('/fn/handover');
    await new Promise((r) => setTimeout(r, 100));
    const second = t.gw('/fn/handover'); // waits: the only instance is busy
    await new Promise((r) => setTimeout(r, 100));
    await t.deploy(dir, { env: { V: 'two' } });
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.status, 200);
    assert.equal(await a.text(), 'one');
    assert.equal(b.status, 200);
    assert.equal(await b.text(), 'two');
  });

  test('scale.min keeps instances warm from deploy on', async () => {
    await t.deploySource('warm', 'export default { fetch: () => new Response("ok") };', 'scale:\n  min: 1\n  idleTimeout: 100ms\n');
    await eventually(async () => (await t.functionInfo('warm')).instances.ready === 1, 5_000, 'warm-up to min');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await t.functionInfo('warm')).instances.ready, 1, 'min instances are not reaped');
  });
});

testNoLeakedChildren();
