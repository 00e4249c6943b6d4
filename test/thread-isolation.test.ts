import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseManifest } from '../src/config/manifest.js';
import { NimbusError } from '../src/shared/errors.js';
import { eventually, functionDir, INSTANCE_BASE_ENV, startPlatform, testNoLeakedChildren } from './helpers.js';

type ErrorJson = { error: { code: string; message: string; requestId: string } };

async function expectError(res: Response, status: number, code: string): Promise<ErrorJson['error']> {
  const body = (await res.json()) as ErrorJson;
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${JSON.stringify(body)}`);
  assert.equal(body.error.code, code);
  assert.equal(body.error.requestId, res.headers.get('x-nimbus-request-id'));
  return body.error;
}

/** Where a request ran: the OS process and the worker thread. */
type Where = { pid: number; isMainThread: boolean; threadId: number };

/** The same faults as test/faults.test.ts, in a function that also says which thread served it. */
const FAULTY = `
import { isMainThread, threadId } from 'node:worker_threads';
export default {
  async fetch(request) {
    const fault = new URL(request.url).searchParams.get('fault');
    if (fault === 'throw') throw new TypeError('boom from the function');
    if (fault === 'exit') { console.log('about to exit'); process.exit(3); }
    if (fault === 'reject') { Promise.reject(new Error('nobody awaits me')); return new Promise(() => {}); }
    if (fault === 'loop') { while (true) {} }
    if (fault === 'heap') { const keep = []; for (;;) keep.push(new Array(1e5).fill({ x: Math.random() })); }
    if (fault === 'buffers') { const keep = []; for (let i = 0; i < 400; i++) { keep.push(Buffer.alloc(1 << 20, 1)); await new Promise(r => setTimeout(r, 2)); } return new Response('survived ' + keep.length); }
    if (fault === 'bad-return') return { not: 'a response' };
    if (fault === 'late-throw') { setTimeout(() => { throw new Error('thrown later'); }, 1); return new Promise(() => {}); }
    return Response.json({ pid: process.pid, isMainThread, threadId });
  },
};`;

const THREAD = 'isolation: thread\n';

describe('isolation: thread', async () => {
  const t = await startPlatform({ warmPoolSize: 2, allowThreadIsolation: true });
  await t.deploySource('faulty', FAULTY, `${THREAD}timeout: 1s\nmemory: 128\nscale:\n  concurrency: 1\n  max: 3\n`);
  await t.deploySource('bystander', 'export default { fetch: () => new Response("unaffected") };', THREAD);
  // The memory faults get more time: near its heap limit V8 collects garbage hard before it gives up.
  await t.deploySource('hog', FAULTY, `${THREAD}timeout: 15s\nmemory: 128\nscale:\n  concurrency: 1\n  max: 3\n`);

  const where = async (name = 'faulty'): Promise<Where> => {
    const res = await t.gw(`/fn/${name}`);
    assert.equal(res.status, 200);
    return (await res.json()) as Where;
  };

  test('a request is served by a worker thread inside the platform process', async () => {
    const w = await where();
    assert.equal(w.pid, process.pid, 'the instance shares the platform process');
    assert.equal(w.isMainThread, false);
    assert.ok(w.threadId > 0);
    const info = (await (await t.admin('GET', '/v1/functions/faulty')).json()) as { function: { isolation: string; runtime: string } };
    assert.equal(info.function.isolation, 'thread');
    const listed = (await (await t.admin('GET', '/v1/functions')).json()) as { functions: { name: string; isolation: string }[] };
    assert.equal(listed.functions.find((f) => f.name === 'bystander')?.isolation, 'thread');
  });

  test('a process function still runs in its own process next to thread functions', async () => {
    await t.deploySource('separate', 'export default { fetch: () => Response.json({ pid: process.pid }) };');
    const { pid } = (await (await t.gw('/fn/separate')).json()) as { pid: number };
    assert.notEqual(pid, process.pid);
    const info = (await (await t.admin('GET', '/v1/functions/separate')).json()) as { function: { isolation: string } };
    assert.equal(info.function.isolation, 'process');
  });

  const cases: { fault: string; status: number; code: string; message?: RegExp; fn?: string }[] = [
    { fault: 'throw', status: 500, code: 'NIMBUS_FUNCTION_ERROR', message: /TypeError: boom from the function/ },
    { fault: 'exit', status: 502, code: 'NIMBUS_INSTANCE_EXITED', message: /exit code 3/ },
    { fault: 'reject', status: 500, code: 'NIMBUS_UNHANDLED_REJECTION', message: /nobody awaits me/ },
    { fault: 'late-throw', status: 500, code: 'NIMBUS_FUNCTION_ERROR', message: /thrown later/ },
    { fault: 'bad-return', status: 502, code: 'NIMBUS_INVALID_RESPONSE' },
    { fault: 'loop', status: 504, code: 'NIMBUS_FUNCTION_TIMEOUT' },
    { fault: 'heap', status: 502, code: 'NIMBUS_MEMORY_LIMIT', fn: 'hog' },
    { fault: 'buffers', status: 502, code: 'NIMBUS_MEMORY_LIMIT', fn: 'hog' },
  ];
  for (const c of cases) {
    test(`${c.fault}: ${c.status} ${c.code} as with process isolation; the platform and the next request are fine`, async () => {
      const fn = c.fn ?? 'faulty';
      const error = await expectError(await t.gw(`/fn/${fn}?fault=${c.fault}`), c.status, c.code);
      if (c.message) assert.match(error.message, c.message);
      assert.equal((await where(fn)).pid, process.pid);
      assert.equal(await (await t.gw('/fn/bystander')).text(), 'unaffected');
    });
  }

  test('an instance that crashed or was killed is replaced by a fresh thread', async () => {
    const before = await where();
    await expectError(await t.gw('/fn/faulty?fault=exit'), 502, 'NIMBUS_INSTANCE_EXITED');
    const afterExit = await where();
    assert.notEqual(afterExit.threadId, before.threadId, 'process.exit ended the thread; a new one serves');
    await expectError(await t.gw('/fn/faulty?fault=loop'), 504, 'NIMBUS_FUNCTION_TIMEOUT');
    assert.notEqual((await where()).threadId, afterExit.threadId, 'the looping thread was terminated');
  });

  test('a thread stuck in while(true) does not slow another function, during or after', async () => {
    const stuck = t.gw('/fn/faulty?fault=loop');
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    for (let i = 0; i < 5; i++) assert.equal(await (await t.gw('/fn/bystander')).text(), 'unaffected');
    assert.ok(Date.now() - started < 900, 'the bystander answered while the other function was stuck');
    await expectError(await stuck, 504, 'NIMBUS_FUNCTION_TIMEOUT');
    assert.equal(await (await t.gw('/fn/bystander')).text(), 'unaffected');
  });

  test('the function sees its own env, not the platform’s, and the platform’s env is untouched', async () => {
    process.env.NIMBUS_TEST_PLATFORM_SECRET = 'must-not-leak';
    const platformPath = process.env.PATH;
    try {
      await t.deploySource('envcheck', 'export default { fetch: () => Response.json(process.env) };', `${THREAD}env:\n  MINE: yes\n  PATH: /only/mine\n`);
      const env = (await (await t.gw('/fn/envcheck')).json()) as Record<string, string>;
      assert.equal(env.MINE, 'yes');
      assert.equal(env.PATH, '/only/mine');
      assert.equal(env.NIMBUS_FUNCTION_NAME, 'envcheck');
      assert.deepEqual(Object.keys(env).sort(), [...INSTANCE_BASE_ENV, 'MINE'].sort());
      assert.equal(process.env.PATH, platformPath, 'the worker replaced its own copy of process.env, not the platform’s');
      assert.equal(process.env.MINE, undefined);
      assert.equal(process.env.NIMBUS_TEST_PLATFORM_SECRET, 'must-not-leak');
    } finally {
      delete process.env.NIMBUS_TEST_PLATFORM_SECRET;
    }
  });

  test('globals and modules are per instance: one function cannot see another’s', async () => {
    await t.deploySource('setter', 'globalThis.shared = "from setter"; export default { fetch: () => new Response(String(globalThis.shared)) };', THREAD);
    await t.deploySource('reader', 'export default { fetch: () => new Response(String(globalThis.shared)) };', THREAD);
    assert.equal(await (await t.gw('/fn/setter')).text(), 'from setter');
    assert.equal(await (await t.gw('/fn/reader')).text(), 'undefined');
  });

  test('several requests run at once on one thread instance', async () => {
    await t.deploySource(
      'overlap',
      `import { threadId } from 'node:worker_threads';
      let inFlight = 0, most = 0;
      export default { async fetch() {
        inFlight++; most = Math.max(most, inFlight);
        await new Promise((r) => setTimeout(r, 300));
        inFlight--;
        return Response.json({ threadId, most });
      } };`,
      `${THREAD}scale:\n  concurrency: 4\n  max: 1\n`,
    );
    await t.gw('/fn/overlap').then((r) => r.text());
    const started = Date.now();
    const answers = await Promise.all([1, 2, 3, 4].map(() => t.gw('/fn/overlap').then((r) => r.json() as Promise<{ threadId: number; most: number }>)));
    assert.ok(Date.now() - started < 1_000, 'four 300 ms requests overlapped');
    assert.equal(new Set(answers.map((a) => a.threadId)).size, 1, 'one instance served them all');
    assert.equal(Math.max(...answers.map((a) => a.most)), 4);
  });

  test('bodies stream both ways, large ones included', async () => {
    await t.deploySource(
      'echo',
      `export default { async fetch(request) {
        const body = new Uint8Array(await request.arrayBuffer());
        let sum = 0; for (const b of body) sum = (sum + b) % 65521;
        const out = new ReadableStream({ start(c) { for (let i = 0; i < 40; i++) c.enqueue(new Uint8Array(100_000).fill(i)); c.close(); } });
        return new Response(out, { headers: { 'x-sum': String(sum), 'x-length': String(body.length) } });
      } };`,
      THREAD,
    );
    const sent = Buffer.alloc(3_000_000);
    for (let i = 0; i < sent.length; i++) sent[i] = (i * 7) & 0xff;
    let sum = 0;
    for (const b of sent) sum = (sum + b) % 65521;
    const res = await t.gw('/fn/echo', { method: 'POST', body: sent });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-length'), String(sent.length));
    assert.equal(res.headers.get('x-sum'), String(sum));
    const got = Buffer.from(await res.arrayBuffer());
    assert.equal(got.length, 4_000_000);
    assert.equal(got[0], 0);
    assert.equal(got[3_999_999], 39);
  });

  test('logs carry request ids, including the line before process.exit', async () => {
    const res = await t.gw('/fn/faulty?fault=throw');
    const requestId = res.headers.get('x-nimbus-request-id') ?? '';
    await res.text();
    await eventually(async () => (await t.logs('faulty', { requestId })).some((l) => l.line.includes('TypeError: boom') && l.stream === 'stderr'));
    await eventually(async () => (await t.logs('faulty', { limit: '1000' })).some((l) => l.line === 'about to exit' && l.requestId !== null));
  });

  test('an idle thread instance exits after scale.idleTimeout (scale to zero)', async () => {
    await t.deploySource('napper', 'export default { fetch: () => new Response("awake") };', `${THREAD}scale:\n  idleTimeout: 300ms\n`);
    assert.equal(await (await t.gw('/fn/napper')).text(), 'awake');
    assert.equal((await t.functionInfo('napper')).instances.ready, 1);
    await eventually(async () => (await t.functionInfo('napper')).instances.ready === 0, 5_000, 'the idle instance to exit');
    assert.equal(await (await t.gw('/fn/napper')).text(), 'awake', 'the next request starts a new one');
  });

  test('a thread function that fails to load is refused at deploy with its own error', async () => {
    const e = await t.deployRejected(functionDir({ 'index.js': 'throw new Error("no config");' }, `name: broken\n${THREAD}`), 'NIMBUS_LOAD_FAILED');
    assert.match(e.message, /no config/);
  });
});

test('isolation: thread needs runtime node; the manifest says so', () => {
  assert.equal(parseManifest({}).isolation, 'process');
  assert.equal(parseManifest({ isolation: 'thread' }).isolation, 'thread');
  for (const runtime of ['python', 'process']) {
    const input = { runtime, isolation: 'thread', ...(runtime === 'process' ? { command: './server' } : {}) };
    const err = (() => {
      try {
        parseManifest(input);
      } catch (e) {
        return e;
      }
      assert.fail('expected a manifest error');
    })();
    assert.ok(err instanceof NimbusError);
    assert.equal(err.code, 'NIMBUS_INVALID_MANIFEST');
    const problems = err.details as { field: string; message: string }[];
    assert.deepEqual(
      problems.map((p) => p.field),
      ['isolation'],
    );
    assert.match(problems[0].message, new RegExp(`needs runtime node; runtime ${runtime} runs as a process`));
  }
  const bad = (() => {
    try {
      parseManifest({ isolation: 'vm' });
    } catch (e) {
      return e as NimbusError;
    }
  })();
  assert.match(String(bad?.message), /isolation must be "process" .* or "thread"/);
});

testNoLeakedChildren();
