/**
 * Issue 15, no silent downgrade: where bubblewrap cannot sandbox instances, a platform
 * bound to loopback runs them as plain processes and says so; one that listens beyond
 * loopback refuses to run any, unless the operator said --insecure-no-sandbox.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openSandbox } from '../../src/platform.js';
import { FunctionPool, type FunctionSpec } from '../../src/runtime/function-pool.js';
import { RuntimeManager } from '../../src/runtime/manager.js';
import { NimbusError } from '../../src/shared/errors.js';
import { startPlatform, tempDir, testNoLeakedChildren } from '../helpers.js';

const MISSING = 'bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)';

describe('without a sandbox', () => {
  test('a platform bound to loopback runs instances as plain processes, and says so', () => {
    const opened = openSandbox(tempDir(), { host: '127.0.0.1' }, () => MISSING);
    assert.equal(opened.sandboxes, undefined);
    assert.equal(opened.refuse, undefined);
    assert.deepEqual(opened.info, { kind: 'none', reason: MISSING, users: 'platform', limits: 'rlimit', network: 'none', seccomp: false });
  });

  test('a platform that listens beyond loopback refuses to start instances, with a coded error', async () => {
    const opened = openSandbox(tempDir(), { host: '0.0.0.0' }, () => MISSING);
    assert.match(String(opened.refuse), /listens on 0\.0\.0\.0, beyond loopback, and cannot sandbox instances here \(bubblewrap is not installed/);
    assert.match(String(opened.refuse), /--insecure-no-sandbox/);
    // The runtime it gets starts nothing: a request is refused, no process is spawned.
    const runtime = new RuntimeManager({ codeRoot: tempDir(), warmPoolSize: 2, onLog: () => {}, refuseUnsandboxed: opened.refuse });
    try {
      const spec = {
        key: '1',
        name: 'refused',
        runtime: 'node',
        version: 1,
        memoryMB: 256,
        timeoutMs: 1_000,
        scale: { min: 0, max: 1, concurrency: 1, idleTimeoutMs: 1_000, windowMs: 60_000, utilization: 0.7 },
        async: { retries: 0, maxEventAgeMs: 60_000 },
        triggers: { cron: [], topics: [], buckets: [] },
        bindings: {},
        load: { functionName: 'refused', version: 1, codeDir: '/nonexistent', entry: 'index.mjs', env: {}, memoryMB: 256, timeoutMs: 1_000 },
      } satisfies FunctionSpec;
      const pool = runtime.pool(spec);
      assert.ok(pool instanceof FunctionPool);
      await assert.rejects(pool.acquire(), (err: unknown) => err instanceof NimbusError && err.code === 'NIMBUS_SANDBOX_UNAVAILABLE');
    } finally {
      await runtime.dispose();
    }
  });

  test('the operator can turn it off (--insecure-no-sandbox): plain processes, reported in /v1/info', async () => {
    const t = await startPlatform({ sandbox: 'off' });
    const info = (await (await t.admin('GET', '/v1/info')).json()) as { sandbox: { kind: string; reason: string } };
    assert.deepEqual(info.sandbox.kind, 'none');
    assert.match(info.sandbox.reason, /--insecure-no-sandbox/);
    await t.deploySource('plain', 'export default { fetch: () => Response.json({ pid: process.pid }) };');
    const { pid } = (await (await t.gw('/fn/plain')).json()) as { pid: number };
    assert.ok(pid > 2, 'not in a PID namespace of its own: a plain process');
  });
});

testNoLeakedChildren();
