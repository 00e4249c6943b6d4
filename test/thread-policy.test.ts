import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { buildFunction } from '../src/build/bundle.js';
import { eventually, functionDir, startPlatform, tempDir, testNoLeakedChildren } from './helpers.js';
import { startUp } from './sandbox-helpers.js';

/** Says where it runs: which process, and whether in a worker thread. */
const WHERE = `import { isMainThread } from 'node:worker_threads';
export default { fetch: () => Response.json({ pid: process.pid, isMainThread }) };`;

const threadDir = () => functionDir({ 'index.js': WHERE }, 'name: fast\nisolation: thread\n');

async function upload(adminUrl: string, token: string, dir: string): Promise<Response> {
  const { zip } = await buildFunction(dir);
  return fetch(`${adminUrl}/v1/functions/fast`, { method: 'PUT', body: zip, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/zip' } });
}

describe('isolation: thread needs the operator to allow it', async () => {
  test('without the flag, a thread deploy is a 403 NIMBUS_THREAD_ISOLATION_DISABLED and changes nothing', async () => {
    const t = await startPlatform();
    const res = await upload(t.platform.adminUrl, t.platform.token, threadDir());
    const body = (await res.json()) as { error: { code: string; message: string; hint: string } };
    assert.equal(res.status, 403, JSON.stringify(body));
    assert.equal(body.error.code, 'NIMBUS_THREAD_ISOLATION_DISABLED');
    assert.match(body.error.message, /"fast" asks for isolation: thread/);
    assert.match(body.error.hint, /--allow-thread-isolation/);
    assert.equal((await t.admin('GET', '/v1/functions/fast')).status, 404);
    assert.deepEqual(readdirSync(join(t.platform.dataDir, 'bundles')), [], 'no bundle was written');
  });

  test('with allowThreadIsolation, the same deploy runs in a worker thread of the platform', async () => {
    const t = await startPlatform({ allowThreadIsolation: true });
    await t.deploy(threadDir());
    const where = (await (await t.gw('/fn/fast')).json()) as { pid: number; isMainThread: boolean };
    assert.deepEqual(where, { pid: process.pid, isMainThread: false });
  });

  test('a data dir holding a thread function: without the flag it runs as processes, with one line said at start', async () => {
    const dataDir = tempDir('nimbus-data-');
    const first = await startPlatform({ dataDir, allowThreadIsolation: true });
    await first.deploy(threadDir());
    await first.platform.stop(2_000);
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const auth = { authorization: `Bearer ${token}` };

    const plain = await startUp(dataDir);
    try {
      // Written before the URLs on stdout, but the two pipes are read independently.
      await eventually(() => plain.stderr().includes('\n'), 5_000, 'the start-up line');
      const lines = plain
        .stderr()
        .split('\n')
        .filter((l) => /thread/.test(l));
      assert.deepEqual(lines, [
        'nimbus: thread isolation is off (start with --allow-thread-isolation to allow it): 1 function(s) deployed with isolation: thread run as processes: fast',
      ]);
      const where = (await (await fetch(`${plain.info.gatewayUrl}/fn/fast`)).json()) as { pid: number; isMainThread: boolean };
      assert.equal(where.isMainThread, true);
      assert.notEqual(where.pid, plain.info.pid, 'its own process, not the platform');
      const info = (await (await fetch(`${plain.info.adminUrl}/v1/functions/fast`, { headers: auth })).json()) as { function: { isolation: string } };
      assert.equal(info.function.isolation, 'process', 'the API shows what runs');
      const again = await upload(plain.info.adminUrl, token, threadDir());
      assert.equal(again.status, 403, 'redeploying it unchanged is refused too');
    } finally {
      assert.equal(await plain.stop(), 0);
    }

    const allowed = await startUp(dataDir, ['--allow-thread-isolation']);
    try {
      assert.ok(!/thread isolation is off/.test(allowed.stderr()));
      const where = (await (await fetch(`${allowed.info.gatewayUrl}/fn/fast`)).json()) as { pid: number; isMainThread: boolean };
      assert.deepEqual(where, { pid: allowed.info.pid, isMainThread: false });
    } finally {
      assert.equal(await allowed.stop(), 0);
    }
  });
});

testNoLeakedChildren();
