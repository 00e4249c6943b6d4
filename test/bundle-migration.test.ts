import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { zipSync } from 'fflate';
import { ArtifactStore } from '../src/artifacts/artifact-store.js';
import { parseManifest } from '../src/config/manifest.js';
import { repairBundles } from '../src/control/bundle-layout.js';
import { STORE_MIGRATIONS } from '../src/store/sqlite/migrations.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { FunctionConfig } from '../src/store/store.js';
import { startPlatform, tempDir, testNoLeakedChildren } from './helpers.js';
import { filesContaining } from './sandbox-helpers.js';

const VALUE_A = 'old-layout-value-a-61d0c2';
const VALUE_B = 'old-layout-value-b-93e7f4';
const CODE = `export default {
  fetch: (request, env) => Response.json({ env: env.API_KEY, process: process.env.API_KEY }),
};
`;

/** The schema of nimbus.db before versions had a digest and secrets existed (user_version 0). */
const OLD_SCHEMA = `
CREATE TABLE functions (name TEXT PRIMARY KEY, latest_id INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE versions (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL,
  config TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (name, version));
CREATE TABLE logs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version INTEGER, request_id TEXT, stream TEXT NOT NULL, ts INTEGER NOT NULL, line TEXT NOT NULL);
CREATE INDEX logs_by_name ON logs (name, id);
`;

/** The content hash as every Nimbus computes it: sorted (path, length, bytes). Written out here so the test does not trust the code under test. */
function contentHash(files: Record<string, string>): string {
  const hash = createHash('sha256');
  for (const path of Object.keys(files).sort()) {
    const data = Buffer.from(files[path]);
    hash.update(`${path}\0${data.length}\0`);
    hash.update(data);
  }
  return hash.digest('hex');
}

/** What `nimbus deploy` uploaded for a function with this env, and what the old platform stored: the manifest inside the bundle. */
function oldUpload(env: Record<string, string>): { files: Record<string, string>; config: FunctionConfig } {
  const manifest = parseManifest({ env });
  // As src/build/bundle.ts writes it: durations spelled out in ms.
  const uploaded = {
    ...manifest,
    handler: 'index.mjs',
    timeout: `${manifest.timeout}ms`,
    scale: { ...manifest.scale, idleTimeout: `${manifest.scale.idleTimeout}ms`, window: `${manifest.scale.window}ms` },
    maxEventAge: `${manifest.maxEventAge}ms`,
  };
  const files = { 'index.mjs': CODE, 'nimbus.json': `${JSON.stringify(uploaded, null, 2)}\n` };
  return { files, config: { ...manifest, entry: 'index.mjs', detectedStyle: 'workers' } };
}

function writeFolder(dir: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

describe('a data dir of the old layout', async () => {
  const dataDir = tempDir('nimbus-data-');
  const a = oldUpload({ API_KEY: VALUE_A });
  const b = oldUpload({ API_KEY: VALUE_B });
  const oldA = contentHash(a.files);
  const oldB = contentHash(b.files);
  const code = contentHash({ 'index.mjs': CODE });
  {
    const db = new Database(join(dataDir, 'nimbus.db'));
    db.exec(OLD_SCHEMA);
    const insert = db.prepare('INSERT INTO versions (name, version, sha256, config, created_at) VALUES (?, 1, ?, ?, 1700000000000)');
    const fn = db.prepare('INSERT INTO functions (name, latest_id, created_at, updated_at) VALUES (?, ?, 1700000000000, 1700000000000)');
    fn.run('legacy-a', Number(insert.run('legacy-a', oldA, JSON.stringify(a.config)).lastInsertRowid));
    fn.run('legacy-b', Number(insert.run('legacy-b', oldB, JSON.stringify(b.config)).lastInsertRowid));
    db.close();
    writeFolder(join(dataDir, 'bundles', oldA), a.files);
    writeFolder(join(dataDir, 'bundles', oldB), b.files);
  }
  assert.equal(filesContaining(join(dataDir, 'bundles'), VALUE_A).length, 1, 'the fixture holds the value where the old layout put it');

  const t = await startPlatform({ dataDir });

  test('is migrated on start: one folder per code, holding only code, named by its hash; no value on disk outside the store', () => {
    const bundles = join(dataDir, 'bundles');
    assert.deepEqual(readdirSync(bundles), [code]);
    assert.deepEqual(readdirSync(join(bundles, code)), ['index.mjs']);
    assert.equal(readFileSync(join(bundles, code, 'index.mjs'), 'utf8'), CODE);
    assert.deepEqual(filesContaining(bundles, VALUE_A), []);
    assert.deepEqual(filesContaining(bundles, VALUE_B), []);
  });

  test('its functions still run with their own env values', async () => {
    assert.deepEqual(await (await t.gw('/fn/legacy-a')).json(), { env: VALUE_A, process: VALUE_A });
    assert.deepEqual(await (await t.gw('/fn/legacy-b')).json(), { env: VALUE_B, process: VALUE_B });
  });

  test('the store records the new bundle name, keeps the old one as the digest, and shows no value', async () => {
    const res = await t.admin('GET', '/v1/functions/legacy-a');
    const text = await res.text();
    assert.ok(!text.includes(VALUE_A));
    const { function: info } = JSON.parse(text) as { function: { sha256: string; version: number; envKeys: string[] } };
    assert.deepEqual({ sha256: info.sha256, version: info.version, envKeys: info.envKeys }, { sha256: code, version: 1, envKeys: ['API_KEY'] });
    const db = new Database(join(dataDir, 'nimbus.db'), { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT name, sha256, digest FROM versions ORDER BY name').all(), [
        { name: 'legacy-a', sha256: code, digest: oldA },
        { name: 'legacy-b', sha256: code, digest: oldB },
      ]);
      assert.equal(db.pragma('user_version', { simple: true }), STORE_MIGRATIONS.length, 'every store migration ran');
    } finally {
      db.close();
    }
  });

  test('uploading the same bundle as before the migration is still no new version', async () => {
    const zip = zipSync(Object.fromEntries(Object.entries(a.files).map(([p, text]) => [p, Buffer.from(text)])));
    const res = await t.admin('PUT', '/v1/functions/legacy-a', zip, { authorization: `Bearer ${t.platform.token}`, 'content-type': 'application/zip' });
    const body = (await res.json()) as { created: boolean; function: { version: number } };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual({ created: body.created, version: body.function.version }, { created: false, version: 1 });
  });
});

test('a migration a crash interrupted is finished at the next start, and a finished one is not redone', () => {
  const dir = tempDir('nimbus-data-');
  const store = new SqliteStore(join(dir, 'nimbus.db'));
  const artifacts = new ArtifactStore(join(dir, 'bundles'));
  try {
    const config = oldUpload({}).config;
    // Crash after the versions moved to the new name, before the folder did.
    const one = oldUpload({ API_KEY: VALUE_A });
    const oldOne = contentHash(one.files);
    const codeOne = contentHash({ 'index.mjs': CODE });
    store.deploy('one', { sha256: codeOne, digest: oldOne }, config, 1);
    writeFolder(artifacts.dir(oldOne), one.files);
    // Crash after the folder moved, before its manifest was deleted.
    const twoFiles = { 'index.mjs': `${CODE}// two\n`, 'nimbus.yaml': `env:\n  API_KEY: ${VALUE_B}\n` };
    const codeTwo = contentHash({ 'index.mjs': twoFiles['index.mjs'] });
    store.deploy('two', { sha256: codeTwo, digest: contentHash(twoFiles) }, config, 1);
    writeFolder(artifacts.dir(codeTwo), twoFiles);

    const repaired = repairBundles(store, artifacts);
    assert.deepEqual(repaired.migrated.sort(), [oldOne, codeTwo].sort());
    assert.deepEqual(artifacts.list().sort(), [codeOne, codeTwo].sort());
    for (const sha of [codeOne, codeTwo]) assert.deepEqual(readdirSync(artifacts.dir(sha)), ['index.mjs']);
    assert.equal(store.getFunction('one')?.latest.sha256, codeOne);
    assert.equal(store.getFunction('two')?.latest.sha256, codeTwo);
    assert.deepEqual(repairBundles(store, artifacts), { halfWritten: [], migrated: [] });
  } finally {
    store.close();
  }
});

testNoLeakedChildren();
