import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { CLI, cleanEnv, eventually, functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';

interface Invocation {
  id: string;
  function: string;
  status: string;
  attempts: number;
  maxAttempts: number;
  lastError: string | null;
  nextAttemptAt: string | null;
  result: { status?: number; body?: string; error?: { code: string; message: string }; attempt?: number } | null;
}

/** A function whose behaviour the request picks: ?fail=<n> fails the first n attempts with 500, ?status=, ?exit, ?slow=<ms>. */
const FLAKY = `
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const attempt = Number(request.headers.get('x-nimbus-attempt'));
    const id = request.headers.get('x-nimbus-invocation-id');
    console.log('attempt', attempt, 'of', id);
    if (url.searchParams.has('slow')) await new Promise((r) => setTimeout(r, Number(url.searchParams.get('slow'))));
    if (url.searchParams.has('exit')) process.exit(3);
    if (attempt <= Number(url.searchParams.get('fail') ?? 0)) return new Response('not yet', { status: 500 });
    if (url.searchParams.has('status')) return new Response('as asked', { status: Number(url.searchParams.get('status')) });
    return Response.json({ attempt, id, path: url.pathname, body: await request.text() });
  },
};`;

describe('async invocation: queued, retried, dead-lettered, redriven', async () => {
  // Retries after ~20-40 ms instead of ~1 s; the clock can be moved forward for maxEventAge.
  let clockOffset = 0;
  // Callbacks go to a listener of this test on 127.0.0.1, which only an allow-list entry lets them reach.
  const t = await startPlatform({
    events: { retryBaseMs: 40, retryMaxMs: 200, maxQueued: 50, now: () => Date.now() + clockOffset },
    callbackAllow: ['127.0.0.1/32'],
  });
  await t.deploy(functionDir({ 'index.js': FLAKY }, 'name: flaky\nretries: 2\n'));

  const post = (path: string, init: RequestInit = {}) => t.gw(path, { method: 'POST', ...init });
  const record = async (id: string) => {
    const res = await t.admin('GET', `/v1/invocations/${id}`);
    assert.equal(res.status, 200);
    return ((await res.json()) as { invocation: Invocation }).invocation;
  };
  const settled = (id: string, timeoutMs = 5_000) =>
    eventually(
      async () => {
        const r = await record(id);
        return r.status === 'queued' || r.status === 'running' ? undefined : r;
      },
      timeoutMs,
      `invocation ${id} to finish`,
    );
  const accepted = async (res: Response) => {
    const body = (await res.json()) as { id: string; status: string; statusUrl: string; duplicate: boolean };
    assert.equal(res.status, 202, JSON.stringify(body));
    assert.equal(res.headers.get('x-call-id'), body.id);
    return body;
  };

  test('POST /async/<fn>/<path> answers 202 with an id; the record shows the result', async () => {
    const body = await accepted(await post('/async/flaky/orders/7?x=1', { body: 'hello' }));
    assert.equal(body.status, 'queued');
    assert.equal(body.statusUrl, `${t.platform.adminUrl}/v1/invocations/${body.id}`);
    const r = await settled(body.id);
    assert.equal(r.status, 'succeeded');
    assert.equal(r.attempts, 1);
    assert.equal(r.function, 'flaky');
    assert.equal(r.result?.status, 200);
    assert.deepEqual(JSON.parse(r.result?.body ?? ''), { attempt: 1, id: body.id, path: '/orders/7', body: 'hello' });
    // The invocation id is the request id of its log lines.
    const lines = await eventually(async () => {
      const l = await t.logs('flaky', { requestId: body.id });
      return l.length > 0 ? l : undefined;
    });
    assert.match(lines[0].line, new RegExp(`attempt 1 of ${body.id}`));
  });

  test('5xx is retried with backoff until it succeeds', async () => {
    const { id } = await accepted(await post('/async/flaky?fail=2'));
    const r = await settled(id);
    assert.equal(r.status, 'succeeded');
    assert.equal(r.attempts, 3);
    assert.equal(JSON.parse(r.result?.body ?? '').attempt, 3);
  });

  test('a 4xx answer is final: no retry', async () => {
    const { id } = await accepted(await post('/async/flaky?status=422'));
    const r = await settled(id);
    assert.equal(r.status, 'failed');
    assert.equal(r.attempts, 1);
    assert.equal(r.result?.status, 422);
  });

  test('a poison message (always 500, or a crash) ends in the dead letters after retries + 1 attempts', async () => {
    // A crash takes down every request on its instance: the crashing function gets its own.
    await t.deploy(functionDir({ 'index.js': FLAKY }, 'name: crashy\nretries: 2\n'));
    const always = await accepted(await post('/async/flaky?fail=99'));
    const crash = await accepted(await post('/async/crashy?exit'));
    for (const id of [always.id, crash.id]) {
      const r = await settled(id);
      assert.equal(r.status, 'dead');
      assert.equal(r.attempts, 3);
      assert.match(r.lastError ?? '', /failed 3 attempts/);
    }
    assert.match((await record(always.id)).lastError ?? '', /the function answered 500/);
    assert.match((await record(crash.id)).lastError ?? '', /NIMBUS_INSTANCE_EXITED/);

    for (const [fn, id] of [
      ['flaky', always.id],
      ['crashy', crash.id],
    ]) {
      const list = (await (await t.admin('GET', `/v1/functions/${fn}/dlq`)).json()) as { deadLetters: Invocation[] };
      assert.ok(
        list.deadLetters.some((d) => d.id === id),
        `${id} in the dead letters of ${fn}`,
      );
    }

    // Redrive one: it fails again (the function is unchanged) and comes back, with fresh attempts.
    const redrive = await t.admin('POST', '/v1/functions/flaky/dlq/redrive', JSON.stringify({ ids: [always.id] }));
    assert.deepEqual(await redrive.json(), { redriven: 1 });
    const again = await settled(always.id);
    assert.equal(again.status, 'dead');
    assert.equal(again.attempts, 3);

    // Purge one by id, then the rest.
    assert.deepEqual(await (await t.admin('DELETE', `/v1/functions/crashy/dlq?id=${crash.id}`)).json(), { purged: 1 });
    assert.equal((await t.admin('GET', `/v1/invocations/${crash.id}`)).status, 404);
  });

  test('a dead letter redriven after a fix is delivered', async () => {
    await t.deploy(functionDir({ 'index.js': 'export default { fetch: () => new Response("broken", { status: 503 }) };' }, 'name: fixme\nretries: 0\n'));
    const { id } = await accepted(await post('/async/fixme', { body: 'keep me' }));
    assert.equal((await settled(id)).status, 'dead');
    await t.deploy(
      functionDir({ 'index.js': 'export default { fetch: async (r) => new Response("fixed: " + await r.text()) };' }, 'name: fixme\nretries: 0\n'),
    );
    assert.deepEqual(await (await t.admin('POST', '/v1/functions/fixme/dlq/redrive')).json(), { redriven: 1 });
    const r = await settled(id);
    assert.equal(r.status, 'succeeded');
    assert.equal(r.result?.body, 'fixed: keep me');
    assert.deepEqual(((await (await t.admin('GET', '/v1/functions/fixme/dlq')).json()) as { deadLetters: unknown[] }).deadLetters, []);
  });

  test('an event older than maxEventAge is dead-lettered instead of retried', async () => {
    await t.deploy(functionDir({ 'index.js': FLAKY }, 'name: aging\nretries: 10\nmaxEventAge: 2m\n'));
    const { id } = await accepted(await post('/async/aging?fail=99'));
    await eventually(async () => ((await record(id)).attempts >= 2 ? true : undefined));
    clockOffset += 3 * 60_000;
    const r = await settled(id);
    clockOffset = 0;
    assert.equal(r.status, 'dead');
    assert.ok(r.attempts < 11, `stopped by age after ${r.attempts} attempts`);
    assert.match(r.lastError ?? '', /maxEventAge/);
  });

  test('X-Callback-Url receives the result with the OpenFaaS callback headers', async () => {
    const received: { headers: IncomingMessage['headers']; body: string }[] = [];
    const sink = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.end();
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/done`;
      const { id } = await accepted(await post('/async/flaky/cb', { body: 'x', headers: { 'x-callback-url': url } }));
      const got = await eventually(() => received[0]);
      assert.equal(got.headers['x-call-id'], id);
      assert.equal(got.headers['x-function-name'], 'flaky');
      assert.equal(got.headers['x-function-status'], '200');
      assert.match(String(got.headers['x-duration-seconds']), /^\d+\.\d+$/);
      assert.equal(JSON.parse(got.body).path, '/cb');
    } finally {
      sink.close();
    }
  });

  test('an Idempotency-Key sent twice queues one invocation', async () => {
    const headers = { 'idempotency-key': 'order-42' };
    const first = await accepted(await post('/async/flaky/idem', { headers }));
    const second = await post('/async/flaky/idem', { headers });
    const body = await accepted(second);
    assert.equal(body.id, first.id);
    assert.equal(body.duplicate, true);
    assert.equal(second.headers.get('x-nimbus-idempotent-replay'), 'true');
    await settled(first.id);
    const lines = await t.logs('flaky', { requestId: first.id });
    assert.equal(lines.filter((l) => l.line.startsWith('attempt')).length, 1);
  });

  test('OpenFaaS /async-function and Lambda Event use the same queue', async () => {
    const res = await post('/async-function/flaky/faas', { body: 'y' });
    assert.equal(res.status, 202);
    assert.equal(await res.text(), '');
    const id = res.headers.get('x-call-id') ?? '';
    assert.equal((await settled(id)).status, 'succeeded');

    await t.deploy(
      functionDir({ 'index.mjs': 'export const handler = async (event) => { console.log("event", JSON.stringify(event)); return "ok"; };' }, 'name: lam\n'),
    );
    const lambda = new LambdaClient({
      endpoint: t.platform.gatewayUrl,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: t.platform.token },
      maxAttempts: 1,
    });
    const out = await lambda.send(new InvokeCommand({ FunctionName: 'lam', InvocationType: 'Event', Payload: Buffer.from('{"n":1}') }));
    assert.equal(out.StatusCode, 202);
    const requestId = out.$metadata.requestId ?? '';
    assert.equal((await settled(requestId)).status, 'succeeded');
    assert.ok((await t.logs('lam', { requestId })).some((l) => l.line === 'event {"n":1}'));
  });

  test('bad input: unknown function 404, over 1 MB 413, bad callback URL and key 400, full queue 429', async () => {
    const unknown = await post('/async/no-such-fn', { body: 'x' });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'NIMBUS_FUNCTION_NOT_FOUND');

    const big = await post('/async/flaky', { body: Buffer.alloc(1024 * 1024 + 1) });
    assert.equal(big.status, 413);
    assert.match(((await big.json()) as { error: { message: string } }).error.message, /async invocation's body is larger than 1048576 bytes/);

    const badUrl = await post('/async/flaky', { headers: { 'x-callback-url': 'file:///etc/passwd' } });
    assert.equal(badUrl.status, 400);
    const badKey = await post('/async/flaky', { headers: { 'idempotency-key': 'k'.repeat(300) } });
    assert.equal(badKey.status, 400);
    assert.equal((await t.admin('GET', '/v1/invocations/nope')).status, 404);

    // 50 events at most: fill the queue with slow ones (one at a time), then one more is refused.
    await t.deploy(functionDir({ 'index.js': FLAKY }, 'name: slowpoke\nscale:\n  max: 1\n  concurrency: 1\n'));
    const slow: string[] = [];
    let refused: Response | undefined;
    for (let i = 0; i < 60 && !refused; i++) {
      const res = await post('/async/slowpoke?slow=100');
      if (res.status === 429) refused = res;
      else slow.push((await accepted(res)).id);
    }
    assert.ok(refused, 'the 51st event is refused');
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'NIMBUS_QUEUE_FULL');
    for (const id of slow) assert.equal((await settled(id, 30_000)).status, 'succeeded');
  });

  test('the CLI queues, shows, lists, redrives and purges', async () => {
    const cli = (...args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, ...args, '--url', t.platform.adminUrl, '--token', t.platform.token], { env: cleanEnv() });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    const queued = await cli('invoke', 'flaky', '--async', '--path', '/from-cli', '-d', 'hi');
    assert.equal(queued.code, 0, queued.stderr);
    const id = /invocation ([0-9a-f-]{36})/.exec(queued.stdout)?.[1] ?? '';
    assert.ok(id, queued.stdout);
    await settled(id);
    const shown = await cli('invocation', id);
    assert.match(shown.stdout, new RegExp(`${id}  flaky  succeeded  \\(attempt 1 of 3\\)`));
    assert.match(shown.stdout, /result {5}200 .*"path":"\/from-cli"/);

    await t.deploy(functionDir({ 'index.js': FLAKY }, 'name: clidlq\nretries: 0\n'));
    const dead = await accepted(await post('/async/clidlq?fail=9'));
    await settled(dead.id);
    const ls = await cli('dlq', 'ls', 'clidlq');
    assert.match(ls.stdout, new RegExp(`${dead.id} .* 1 +failed 1 attempt; last error: the function answered 500`));
    assert.match((await cli('dlq', 'show', dead.id)).stdout, /dead {2}\(attempt 1 of 1\)/);
    assert.match((await cli('dlq', 'redrive', 'clidlq')).stdout, /Queued 1 dead letter of clidlq again/);
    await settled(dead.id);
    assert.match((await cli('dlq', 'purge', 'clidlq', dead.id)).stdout, /Deleted 1 dead letter of clidlq/);
    assert.match((await cli('dlq', 'ls', 'clidlq')).stdout, /No dead letters for clidlq/);
    const unknown = await cli('invocation', 'no-such-id');
    assert.equal(unknown.code, 4);
    assert.match(unknown.stderr, /NIMBUS_INVOCATION_NOT_FOUND/);
    const wrong = await cli('dlq', 'explode', 'clidlq');
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /unknown dlq action "explode"/);
  });

  test('removing a function drops its queued events', async () => {
    await t.deploy(functionDir({ 'index.js': FLAKY }, 'name: doomed\nretries: 0\n'));
    const { id } = await accepted(await post('/async/doomed?status=500'));
    await settled(id);
    assert.equal((await t.admin('DELETE', '/v1/functions/doomed')).status, 204);
    assert.equal((await t.admin('GET', `/v1/invocations/${id}`)).status, 404);
  });
});

testNoLeakedChildren();
