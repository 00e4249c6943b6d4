import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { zipSync } from 'fflate';
import { BUNDLE_STORED_CHANNEL } from '../src/artifacts/artifact-store.js';
import { functionDir, startPlatform, tempDir, testNoLeakedChildren } from './helpers.js';

const enc = (s: string) => new TextEncoder().encode(s);
const HELLO = 'export default { fetch: () => new Response("hello") };';

/** Every file under a folder, by relative path, with its content. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, prefix: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`);
      else out[`${prefix}${e.name}`] = readFileSync(join(dir, e.name), 'latin1');
    }
  };
  walk(root, '');
  return out;
}

describe('the bundle store across a crash', async () => {
  test('a start removes the half-written folders a crash left, and leaves real bundles as they were', async () => {
    const dataDir = tempDir('nimbus-data-');
    const first = await startPlatform({ dataDir });
    await first.deploySource('survivor', HELLO);
    await first.platform.stop(2_000);
    const bundles = join(dataDir, 'bundles');
    const before = snapshot(bundles);
    assert.ok(Object.keys(before).length > 0);
    // What a platform killed in the middle of a deploy (or of removing a bundle) leaves behind.
    for (const name of ['.tmp-0f3c9a-4242-1700000000000-abc123', '.tmp-rm-77aa-4242-1700000000001-def456']) {
      mkdirSync(join(bundles, name, 'lib'), { recursive: true });
      writeFileSync(join(bundles, name, 'index.mjs'), 'export default { fetch() { return new Re');
      writeFileSync(join(bundles, name, 'lib', 'half.js'), '');
    }

    const second = await startPlatform({ dataDir });
    assert.deepEqual(
      readdirSync(bundles).filter((n) => n.startsWith('.tmp-')),
      [],
      'half-written folders are gone',
    );
    assert.deepEqual(snapshot(bundles), before, 'real bundles are untouched');
    const res = await second.gw('/fn/survivor');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'hello');
  });

  test('a bundle is on disk, flushed, before the version that names it commits', async () => {
    const t = await startPlatform();
    const seen: { sha256: string; usedWhenStored: boolean }[] = [];
    const onStored = (message: unknown) => {
      const { sha256 } = message as { sha256: string };
      seen.push({ sha256, usedWhenStored: t.platform.store.isBundleUsed(sha256) });
    };
    subscribe(BUNDLE_STORED_CHANNEL, onStored);
    try {
      await t.deploy(functionDir({ 'index.js': 'export default { fetch: () => new Response("ordered") };' }, 'name: ordered\n'));
    } finally {
      unsubscribe(BUNDLE_STORED_CHANNEL, onStored);
    }
    const { function: info } = (await (await t.admin('GET', '/v1/functions/ordered')).json()) as { function: { sha256: string } };
    assert.deepEqual(seen, [{ sha256: info.sha256, usedWhenStored: false }], 'stored (and flushed) once, while no version named it yet');
    assert.ok(t.platform.store.isBundleUsed(info.sha256), 'then the version committed');
  });

  test('a zip in which one path is both a file and a folder is a 400 naming the path, not a 500', async () => {
    const t = await startPlatform();
    const bundles = join(t.platform.dataDir, 'bundles');
    const before = readdirSync(bundles);
    const zip = zipSync({ 'index.mjs': enc(HELLO), lib: enc('a file'), 'lib/util.js': enc('export const x = 1;') });
    const res = await t.admin('PUT', '/v1/functions/clash', zip, { authorization: `Bearer ${t.platform.token}`, 'content-type': 'application/zip' });
    const body = (await res.json()) as { error: { code: string; message: string; details: { paths: string[] } } };
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(body.error.code, 'NIMBUS_INVALID_BUNDLE');
    assert.match(body.error.message, /"lib"/);
    assert.deepEqual(body.error.details.paths, ['lib']);
    assert.deepEqual(readdirSync(bundles), before, 'nothing was written');
    assert.equal((await t.admin('GET', '/v1/functions/clash')).status, 404);
  });
});

testNoLeakedChildren();
