import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { eventually, REPO_ROOT, startPlatform, testNoLeakedChildren } from './helpers.js';

interface Case {
  /** Path and query after the function name. */
  path: string;
  init?: { method: string; body: string; headers?: Record<string, string> };
  /** The response body: exact text, or JSON compared deeply, or a check. */
  expect: string | Record<string, unknown> | ((text: string) => void);
  /** The style the deploy must report. */
  style: string;
}

/** One request per example (every style and language), with what it must answer. */
const CASES: Record<string, Case> = {
  'azure-http': { path: '?name=Ada', expect: 'Hello, Ada!', style: 'azure' },
  'azure-timer': { path: '', expect: 'azure-timer runs every five minutes', style: 'azure' },
  'cron-heartbeat': {
    path: '',
    expect: (text) => {
      const v = JSON.parse(text);
      assert.equal(v.schedule, '*/5 * * * *');
      assert.equal(typeof v.runs, 'number');
    },
    style: 'workers',
  },
  'orders-api': { path: '', expect: { orders: [] }, style: 'workers' },
  'orders-worker': { path: '', expect: 'orders-worker consumes the "orders" topic\n', style: 'workers' },
  'upload-indexer': { path: '', expect: 'upload-indexer watches the "uploads" bucket\n', style: 'lambda' },
  echo: { path: '', init: { method: 'POST', body: 'ping' }, expect: 'ping', style: 'workers' },
  'fission-hello': { path: '', expect: 'hello, world! (GET)\n', style: 'fission' },
  'fn-hello': {
    path: '',
    init: { method: 'POST', body: '{"name":"Ada"}', headers: { 'content-type': 'application/json' } },
    expect: { message: 'Hello Ada' },
    style: 'fn',
  },
  'gcf-http': { path: '?name=Ada', expect: 'Hello Ada!', style: 'gcf' },
  greet: { path: '?name=Ada', expect: { message: 'Hello, Ada!' }, style: 'workers' },
  'hello-lambda': { path: '/x', expect: (text) => assert.equal(JSON.parse(text).path, '/x'), style: 'lambda' },
  'knative-http': { path: '?a=1', expect: { query: { a: '1' }, method: 'GET' }, style: 'knative' },
  'netlify-v2': { path: '/travel-guide/paris/france', expect: 'Travel guide for paris, france', style: 'netlify' },
  'openfaas-node': {
    style: 'openfaas',
    path: '',
    init: { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } },
    expect: { status: 'You said: {"a":1}', method: 'POST', path: '/' },
  },
  'openwhisk-web': { path: '?name=Ada', expect: '<html><body><h3>hello Ada!</h3></body></html>', style: 'openwhisk' },
  'process-bootstrap': { path: '/x/y', expect: 'shell bootstrap saw /x/y', style: 'lambda-runtime' },
  'process-http': { path: '/a?b=1', expect: { hello: 'from a process', path: '/a?b=1' }, style: 'http' },
  'process-stdio': { path: '', init: { method: 'POST', body: 'one two three' }, expect: 'POST request with 3 words\n', style: 'stdio' },
  'python-flask': { path: '/hello/Ada', expect: 'Hello Ada from Flask', style: 'wsgi' },
  'python-openfaas': {
    style: 'openfaas',
    path: '',
    init: { method: 'POST', body: '{"name":"Ada"}', headers: { 'content-type': 'application/json' } },
    expect: { message: 'Hello Ada', method: 'POST' },
  },
  'python-openfaas-classic': { path: '', init: { method: 'POST', body: 'ping' }, expect: 'You said: ping', style: 'openfaas-classic' },
  'python-lambda': { path: '?name=Ada', expect: (text) => assert.equal(JSON.parse(text).message, 'Hello Ada'), style: 'lambda' },
  'vercel-node': { path: '?name=Ada', expect: { message: 'Hello Ada!' }, style: 'vercel' },
};

function check(c: Case, text: string, where: string): void {
  if (typeof c.expect === 'function') c.expect(text);
  else if (typeof c.expect === 'string') assert.equal(text, c.expect, where);
  else assert.deepEqual(JSON.parse(text), c.expect, where);
}

/** The API Gateway (HTTP API, payload 2.0) event for the same request, as `aws lambda invoke` users send it. */
function apiGatewayEvent(c: Case): Record<string, unknown> {
  const [rawPath, rawQueryString = ''] = (c.path.startsWith('/') ? c.path : `/${c.path}`).split('?');
  const method = c.init?.method ?? 'GET';
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers: { host: 'example.com', ...(c.init?.headers ?? {}) },
    ...(rawQueryString ? { queryStringParameters: Object.fromEntries(new URLSearchParams(rawQueryString)) } : {}),
    requestContext: { http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' }, requestId: 'r1', stage: '$default' },
    ...(c.init ? { body: c.init.body, isBase64Encoded: false } : {}),
  };
}

describe('every example through the gateway, the OpenFaaS API and the Lambda Invoke API', async () => {
  const t = await startPlatform();
  const examples = readdirSync(join(REPO_ROOT, 'examples'));
  assert.deepEqual(examples.sort(), Object.keys(CASES).sort(), 'every example has a case here');
  const detected: Record<string, string | undefined> = {};
  for (const name of examples) detected[name] = ((await t.deploy(join(REPO_ROOT, 'examples', name))) as { style?: string }).style;
  const lambda = new LambdaClient({
    endpoint: t.platform.gatewayUrl,
    region: 'us-east-1',
    credentials: { accessKeyId: 'nimbus', secretAccessKey: t.platform.token },
    maxAttempts: 1,
  });

  for (const [name, c] of Object.entries(CASES)) {
    test(name, async () => {
      assert.equal(detected[name], c.style, 'the style the deploy reports');
      const viaGateway = await t.gw(`/fn/${name}${c.path}`, c.init);
      assert.equal(viaGateway.status, 200);
      check(c, await viaGateway.text(), 'gateway');

      const viaOpenFaas = await t.gw(`/function/${name}${c.path}`, c.init);
      assert.equal(viaOpenFaas.status, 200);
      check(c, await viaOpenFaas.text(), 'OpenFaaS /function');

      // OpenWhisk's non-web invocation takes the params themselves.
      const payload = name === 'openwhisk-web' ? { name: 'Ada' } : apiGatewayEvent(c);
      const out = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify(payload)) }));
      assert.equal(out.FunctionError, undefined, Buffer.from(out.Payload ?? []).toString());
      const result = JSON.parse(Buffer.from(out.Payload ?? []).toString('utf8'));
      if (name !== 'openwhisk-web') assert.equal(result.statusCode, 200);
      check(c, result.isBase64Encoded ? Buffer.from(result.body, 'base64').toString('utf8') : result.body, 'Lambda Invoke');
    });
  }
});

describe('the trigger examples do what they say (schedules, topics, buckets, code-declared timers)', async () => {
  let now = Date.parse('2026-05-01T12:00:10Z');
  const t = await startPlatform({ events: { now: () => now } });
  for (const name of ['cron-heartbeat', 'orders-api', 'orders-worker', 'upload-indexer', 'azure-timer']) await t.deploy(join(REPO_ROOT, 'examples', name));
  const logLines = async (name: string) => (await t.logs(name)).map((l) => l.line);

  test('cron-heartbeat: scheduled() runs at the tick and records it', async () => {
    now = Date.parse('2026-05-01T12:05:00Z');
    await t.platform.events.scheduler.runDue();
    const beat = await eventually(async () => {
      const v = (await (await t.gw('/fn/cron-heartbeat')).json()) as { runs: number; lastRun: string | null };
      return v.runs === 1 ? v : undefined;
    });
    assert.equal(beat.lastRun, '2026-05-01T12:05:00.000Z');
  });

  test('azure-timer: the app.timer schedule from the code fires', async () => {
    await eventually(async () => (await logLines('azure-timer')).some((l) => l.startsWith('timer fired (past due: ')) || undefined);
  });

  test('orders-api publishes, orders-worker stores', async () => {
    const res = await t.gw('/fn/orders-api', {
      method: 'POST',
      body: JSON.stringify({ id: 'A1', item: 'book' }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.status, 202);
    const stored = await eventually(async () => {
      const v = (await (await t.gw('/fn/orders-api')).json()) as { orders: { id: string; item: string }[] };
      return v.orders.length > 0 ? v.orders : undefined;
    });
    assert.deepEqual(
      stored.map((o) => [o.id, o.item]),
      [['A1', 'book']],
    );
  });

  test('upload-indexer sees objects created in and deleted from "uploads"', async () => {
    const auth = { authorization: `Bearer ${t.platform.token}` };
    await t.admin('PUT', '/v1/buckets/uploads/objects/notes%20one.txt', 'hello', { ...auth, 'content-type': 'text/plain' });
    await t.admin('DELETE', '/v1/buckets/uploads/objects/notes%20one.txt', undefined, auth);
    const lines = await eventually(async () => {
      const l = (await logLines('upload-indexer')).filter((x) => x.startsWith('Object'));
      return l.length >= 2 ? l : undefined;
    });
    assert.deepEqual(lines.sort(), ['ObjectCreated:Put uploads/notes one.txt (5 bytes)', 'ObjectRemoved:Delete uploads/notes one.txt (5 bytes)']);
  });
});

describe('the OpenFaaS gateway API', async () => {
  const t = await startPlatform();
  await t.deploySource('faas-fn', `export default { fetch(req) { console.log('served', new URL(req.url).pathname); return new Response('ok'); } };`);
  const basic = (password: string) => ({ authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` });
  const system = (path: string, init: RequestInit = {}) => t.gw(path, { ...init, headers: { ...basic(t.platform.token), ...(init.headers ?? {}) } });

  test('/system needs basic auth (admin and the admin token), answered in OpenFaaS style', async () => {
    for (const headers of [{}, basic('wrong'), { authorization: `Bearer ${t.platform.token}` }]) {
      const res = await t.gw('/system/functions', { headers });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Basic realm="Restricted"');
      assert.equal(await res.text(), 'invalid credentials\n');
    }
  });

  test('/function/<name> invokes without auth; an unknown one is a plain-text 404', async () => {
    assert.equal(await (await t.gw('/function/faas-fn/a/b')).text(), 'ok');
    const missing = await t.gw('/function/no-such-fn');
    assert.equal(missing.status, 404);
    assert.match(missing.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(await missing.text(), 'function "no-such-fn" does not exist\n');
  });

  test('/system/functions and /system/function/<name> describe functions, counting invocations', async () => {
    const list = (await (await system('/system/functions')).json()) as { name: string; invocationCount: number; replicas: number; namespace: string }[];
    const fn = list.find((f) => f.name === 'faas-fn');
    assert.ok(fn);
    assert.equal(fn.invocationCount, 1);
    assert.equal(fn.replicas, 1);
    assert.equal(fn.namespace, 'openfaas-fn');
    const one = (await (await system('/system/function/faas-fn')).json()) as { name: string; availableReplicas: number };
    assert.equal(one.name, 'faas-fn');
    assert.equal(one.availableReplicas, 1);
    const missing = await system('/system/function/nope');
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), 'function nope not found\n');
    const info = (await (await system('/system/info')).json()) as { provider: { provider: string } };
    assert.equal(info.provider.provider, 'nimbus');
  });

  test('/system/logs streams the function log as OpenFaaS log messages', async () => {
    await t.gw('/function/faas-fn/second');
    const lines = await eventually(async () => {
      const text = await (await system('/system/logs?name=faas-fn&tail=1&follow=false')).text();
      return text.includes('/second') ? text.trim().split('\n') : undefined;
    });
    assert.equal(lines.length, 1);
    const msg = JSON.parse(lines[0]) as Record<string, string>;
    assert.equal(msg.name, 'faas-fn');
    assert.equal(msg.text, 'served /second');
    assert.equal(msg.instance, 'faas-fn-v1');
    assert.ok(!Number.isNaN(Date.parse(msg.timestamp)));
    const all = (await (await system('/system/logs?name=faas-fn')).text()).trim().split('\n');
    assert.equal(all.length, 2);
    assert.equal((await system('/system/logs?name=faas-fn&tail=x')).status, 400);
  });

  test('deploying an image is refused with a reason; DELETE /system/functions removes a function', async () => {
    const deploy = await system('/system/functions', { method: 'POST', body: JSON.stringify({ service: 'x', image: 'ghcr.io/x/y:1' }) });
    assert.equal(deploy.status, 501);
    assert.match(await deploy.text(), /nimbus deploy/);
    const bad = await system('/system/functions', { method: 'DELETE', body: 'not json' });
    assert.equal(bad.status, 400);
    const gone = await system('/system/functions', { method: 'DELETE', body: JSON.stringify({ functionName: 'faas-fn' }) });
    assert.equal(gone.status, 202);
    assert.equal((await t.gw('/function/faas-fn')).status, 404);
    assert.equal((await system('/system/functions', { method: 'DELETE', body: JSON.stringify({ functionName: 'faas-fn' }) })).status, 404);
  });
});

testNoLeakedChildren();
