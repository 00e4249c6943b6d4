import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { zipSync } from 'fflate';
import { ArtifactStore, isSafeBundlePath, readBundleZip } from '../src/artifacts/artifact-store.js';
import { tempDir } from './helpers.js';

const enc = (s: string) => new TextEncoder().encode(s);

test('safe bundle paths', () => {
  for (const ok of ['index.mjs', 'lib/a.js', 'node_modules/x/package.json', '.hidden']) assert.ok(isSafeBundlePath(ok), ok);
  for (const bad of ['', '../a', 'a/../../b', '/abs', 'a\\b', 'C:/x', 'a//b', './a', 'a/.', 'nul\0byte', 'a'.repeat(1025)]) {
    assert.ok(!isSafeBundlePath(bad), JSON.stringify(bad));
  }
});

test('the content hash ignores zip encoding and entry order', () => {
  const a = readBundleZip(zipSync({ 'a.js': enc('1'), 'b.js': enc('2') }, { level: 0 }));
  const b = readBundleZip(zipSync({ 'b.js': enc('2'), 'a.js': enc('1') }, { level: 9, mtime: new Date('2001-01-01') }));
  const c = readBundleZip(zipSync({ 'a.js': enc('1'), 'b.js': enc('3') }));
  assert.equal(a.sha256, b.sha256);
  assert.notEqual(a.sha256, c.sha256);
  assert.match(a.sha256, /^[0-9a-f]{64}$/);
});

test('bundles are stored once, by content, and appear whole', () => {
  const store = new ArtifactStore(join(tempDir(), 'bundles'));
  const bundle = readBundleZip(zipSync({ 'index.mjs': enc('export default 1'), 'lib/x.js': enc('x') }));
  const dir = store.put(bundle);
  assert.equal(dir, store.dir(bundle.sha256));
  assert.equal(readFileSync(join(dir, 'lib/x.js'), 'utf8'), 'x');
  assert.equal(store.put(bundle), dir);
  assert.ok(!existsSync(join(store.root, `.tmp-${bundle.sha256}`)));
});

test('empty and unreadable uploads are refused with a code', () => {
  assert.throws(() => readBundleZip(zipSync({})), { code: 'NIMBUS_INVALID_BUNDLE' });
  assert.throws(() => readBundleZip(enc('not a zip')), { code: 'NIMBUS_INVALID_BUNDLE' });
});
