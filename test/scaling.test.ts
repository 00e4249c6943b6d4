import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_MEMORY_MB, MAX_QUEUED_REQUESTS_PER_FUNCTION } from '../src/config/defaults.js';
import { FunctionPool, type FunctionSpec } from '../src/runtime/function-pool.js';
import type { Instance } from '../src/runtime/instance.js';
import { DEFAULT_SHAPE, type InstanceLauncher, NodeLauncher } from '../src/runtime/launcher.js';
import { WarmPool } from '../src/runtime/warm-pool.js';
import { eventually, startPlatform, tempDir, testNoLeakedChildren } from './helpers.js';

/** Each instance answers with an id of its own (in a sandbox every instance is PID 1). */
const SLOW = (ms: number) =>
  `const INSTANCE = Math.random().toString(36).slice(2); export default { async fetch() { await new Promise((r) => setTimeout(r, ${ms})); return new Response(INSTANCE); } };`;

type Info = { instances: { ready: number; busy: number; coldStarts: number; autoscaler?: { desired: number; panic: boolean; waiting: number } } };

describe('autoscaler and the platform-wide instance limit, on a running platform', async () => {
  // One test fills a function's wait queue (1,000 requests) from this one client: more
  // connections than the gateway lets one client hold by default.
  const t = await startPlatform({ warmPoolSize: 2, maxInstances: 3, connections: { gateway: { perClient: 2 * MAX_QUEUED_REQUESTS_PER_FUNCTION } } });
  const info = async (name: string) => (await t.functionInfo(name)) as unknown as Info;

  test('load over the target utilisation starts an instance before any request has to wait', async () => {
    // Two slots per instance at 50%: one request in flight is all an instance should carry.
    await t.deploySource('ahead', SLOW(2_500), 'scale:\n  concurrency: 2\n  utilization: 50\n  max: 3\n');
    const both = Promise.all([t.gw('/fn/ahead'), t.gw('/fn/ahead')].map(async (r) => (await r).text()));
    // Both fit on the first instance (no request waits); the autoscaler still asks for a second.
    await eventually(async () => (await info('ahead')).instances.ready === 2 || undefined, 4_000, 'a second instance, started ahead of demand');
    const pids = await both;
    assert.equal(new Set(pids).size, 1, 'both requests were served by the first instance');
    const i = await info('ahead');
    assert.equal(i.instances.coldStarts, 2);
    assert.equal(i.instances.autoscaler?.desired, 2);
  });

  test('the autoscaler scales down within its window, before idleTimeout', async () => {
    await t.deploySource('wave', SLOW(300), 'scale:\n  concurrency: 1\n  max: 3\n  window: 6s\n  idleTimeout: 10m\n');
    await t.admin('DELETE', '/v1/functions/ahead');
    await eventually(() => t.platform.runtime.budget.used === 0 || undefined, 5_000, 'the instances of ahead gone');
    await Promise.all(Array.from({ length: 3 }, () => t.gw('/fn/wave')));
    assert.equal((await info('wave')).instances.ready, 3);
    // No more load: panic ends a window after the burst, then the stable window empties.
    // One instance stays until idleTimeout (10 minutes) passes without a request.
    await eventually(async () => (await info('wave')).instances.ready === 1 || undefined, 15_000, 'down to one instance');
  });

  test('at the platform limit, the least recently used idle instance of another function makes room', async () => {
    await t.admin('DELETE', '/v1/functions/wave');
    await eventually(() => t.platform.runtime.budget.used === 0 || undefined, 5_000, 'the instances of wave gone');
    for (const name of ['idle-a', 'idle-b', 'idle-c']) {
      await t.deploySource(name, `export default { fetch: () => new Response("${name}") };`, 'scale:\n  idleTimeout: 10m\n');
      assert.equal((await t.gw(`/fn/${name}`)).status, 200);
    }
    assert.equal(t.platform.runtime.budget.used, 3, 'the limit is reached, every instance idle');
    await t.deploySource('third', 'export default { fetch: () => new Response("third") };', 'scale:\n  idleTimeout: 10m\n');
    const res = await t.gw('/fn/third');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'third');
    assert.ok(t.platform.runtime.budget.used <= 3, `at most 3 instances: ${t.platform.runtime.budget.used}`);
    assert.deepEqual(
      await Promise.all(['idle-a', 'idle-b', 'idle-c'].map(async (n) => (await info(n)).instances.ready)),
      [0, 1, 1],
      'the least recently used one (idle-a) was stopped',
    );
  });

  test('with every instance busy, a new function waits for room instead of failing', async () => {
    // idleTimeout is long: room comes from a hog instance going idle, not from scale to zero.
    // Slow enough that the hogs still run once the next deploy (its check instance starts a sandbox) is done.
    await t.deploySource('hog', SLOW(3_000), 'scale:\n  concurrency: 1\n  max: 3\n  idleTimeout: 10m\n');
    // Make every instance busy: three slow requests take the whole budget.
    const hogs = Array.from({ length: 3 }, () => t.gw('/fn/hog'));
    await eventually(async () => (await info('hog')).instances.busy === 3 || undefined, 5_000, 'all three instances busy');
    await t.deploySource('patient', 'export default { fetch: () => new Response("served") };');
    const t0 = Date.now();
    const res = await t.gw('/fn/patient');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'served');
    const waited = Date.now() - t0;
    assert.ok(waited >= 300 && waited < 8_000, `it waited for a busy instance to finish, not for idleTimeout (${waited} ms)`);
    for (const r of await Promise.all(hogs)) assert.equal(r.status, 200);
  });

  test('the memory limit holds for an instance whose cold start is slow', async () => {
    // Module init takes longer than the watchdog's interval: the watchdog must be awake when requests start.
    const code = `await new Promise((r) => setTimeout(r, 600));
export default { async fetch() { const held = []; for (let i = 0; i < 50; i++) held.push(Buffer.alloc(10 * 1024 * 1024, 1)); await new Promise((r) => setTimeout(r, 1500)); return new Response('survived ' + held.length); } };`;
    await t.deploySource('slow-hog', code, 'memory: 256\ntimeout: 20s\n');
    const res = await t.gw('/fn/slow-hog');
    assert.equal(res.status, 502, await res.clone().text());
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'NIMBUS_MEMORY_LIMIT');
  });

  test('through the gateway: with the wait queue full, the next request is answered 429 with Retry-After at once', async () => {
    // It holds its one slot until its client leaves.
    const untilAborted = `export default { async fetch(request) {
      await new Promise((r) => { const t = setTimeout(r, 20000); request.signal.addEventListener('abort', () => { clearTimeout(t); r(); }); });
      return new Response('done');
    } };`;
    await t.deploySource('queue-full', untilAborted, 'scale:\n  concurrency: 1\n  max: 1\ntimeout: 30s\n');
    const clients = new AbortController();
    const leave = (p: Promise<Response>) => p.then((r) => r.status).catch(() => 'left');
    const busy = leave(t.gw('/fn/queue-full', { signal: clients.signal }));
    await eventually(async () => (await info('queue-full')).instances.busy === 1 || undefined, 10_000, 'the only slot taken');
    const queued = Array.from({ length: MAX_QUEUED_REQUESTS_PER_FUNCTION }, () => leave(t.gw('/fn/queue-full', { signal: clients.signal })));
    await eventually(
      async () => (await info('queue-full')).instances.autoscaler?.waiting === MAX_QUEUED_REQUESTS_PER_FUNCTION || undefined,
      15_000,
      `${MAX_QUEUED_REQUESTS_PER_FUNCTION} requests waiting`,
    );
    const t0 = Date.now();
    const refused = await t.gw('/fn/queue-full');
    assert.equal(refused.status, 429);
    assert.ok(Date.now() - t0 < 2_000, 'refused at once, not after waiting');
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal(refused.headers.get('x-nimbus-error-code'), 'NIMBUS_TOO_MANY_REQUESTS');
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'NIMBUS_TOO_MANY_REQUESTS');
    // The clients give up: their places in the queue go with them.
    clients.abort();
    assert.ok((await Promise.all([busy, ...queued])).every((r) => r === 'left'));
    await eventually(
      async () => {
        const i = (await info('queue-full')).instances;
        return (i.autoscaler?.waiting === 0 && i.busy === 0) || undefined;
      },
      5_000,
      'the queue empty and the slot free',
    );
  });

  test('an idle platform runs no autoscaler timer and no instances', async () => {
    for (const name of ['idle-a', 'idle-b', 'idle-c', 'third', 'hog', 'patient', 'slow-hog', 'queue-full']) await t.admin('DELETE', `/v1/functions/${name}`);
    await eventually(() => t.platform.runtime.budget.used === 0 || undefined, 5_000, 'every instance gone');
    await eventually(() => t.platform.runtime.scaleLoop.active === 0 || undefined, 3_000, 'no pool left to decide for');
  });

  testNoLeakedChildren();
});

/** A launcher whose instances never come up: requests wait, so the queue fills. */
class NeverStarts implements InstanceLauncher {
  start(): Promise<Instance> {
    return new Promise(() => {});
  }
}

test('a full wait queue answers 429 NIMBUS_TOO_MANY_REQUESTS at once', async () => {
  const spec = {
    key: 'k',
    name: 'queued',
    runtime: 'node',
    version: 1,
    memoryMB: DEFAULT_MEMORY_MB,
    timeoutMs: 1_000,
    scale: { min: 0, max: 1, concurrency: 1, idleTimeoutMs: 60_000, windowMs: 60_000, utilization: 0.7 },
    async: { retries: 0, maxEventAgeMs: 1 },
    triggers: { cron: [], topics: [], buckets: [] },
    bindings: {},
    load: {},
  } as unknown as FunctionSpec;
  const pool = new FunctionPool(spec, new WarmPool(new NeverStarts(), 0, DEFAULT_SHAPE));
  const controller = new AbortController();
  const waiting = Array.from({ length: MAX_QUEUED_REQUESTS_PER_FUNCTION }, () => pool.acquire(controller.signal).catch((e: Error) => e));
  await assert.rejects(pool.acquire(), (err: Error & { code?: string }) => err.code === 'NIMBUS_TOO_MANY_REQUESTS');
  assert.equal(pool.autoscaler.waiting, MAX_QUEUED_REQUESTS_PER_FUNCTION);
  controller.abort(new Error('test over'));
  assert.ok((await Promise.all(waiting)).every((e) => e instanceof Error));
  assert.equal(pool.autoscaler.waiting, 0);
  pool.retire();
});

test('the warm pool grows with a burst of cold starts and shrinks back once the demand has passed', async () => {
  let now = Date.parse('2026-05-01T12:00:00Z');
  const launcher = new NodeLauncher({ codeRoot: tempDir('nimbus-warm-'), onLog: () => {} });
  const warm = new WarmPool(launcher, 1, DEFAULT_SHAPE, { maxSize: 4, now: () => now });
  try {
    warm.fill();
    await eventually(() => warm.idleCount === 1 || undefined, 10_000, 'the base instance');
    assert.equal(warm.target, 1);
    // Six cold starts within one second: the pool aims for the cap (4).
    const taken = await Promise.all(Array.from({ length: 6 }, () => warm.take(DEFAULT_SHAPE)));
    assert.equal(warm.target, 4);
    warm.fill();
    await eventually(() => warm.idleCount === 4 || undefined, 15_000, 'four pre-started instances');
    await Promise.all(taken.map((i) => i.dispose()));
    // A minute later the burst has left the window: back to the base size.
    now += 61_000;
    assert.equal(warm.target, 1);
    warm.shrink();
    assert.equal(warm.idleCount, 1);
  } finally {
    await warm.dispose();
  }
});
