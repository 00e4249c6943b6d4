import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { existsSync, fsyncSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { test } from 'node:test';
import { zipSync } from 'fflate';
import { ArtifactStore, BUNDLE_STORED_CHANNEL, HALF_WRITTEN_PREFIX, isSafeBundlePath, readBundleZip } from '../src/artifacts/artifact-store.js';
import type { NimbusError } from '../src/shared/errors.js';
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

test('a manifest at the root is left out of the stored bundle and its id, but not of the digest', () => {
  const code = { 'index.mjs': enc('export default 1') };
  const plain = readBundleZip(zipSync(code));
  const withEnv = readBundleZip(zipSync({ ...code, 'nimbus.json': enc('{"env":{"TOKEN":"one"}}') }));
  const otherEnv = readBundleZip(zipSync({ ...code, 'nimbus.json': enc('{"env":{"TOKEN":"two"}}') }));
  assert.equal(withEnv.sha256, plain.sha256, 'the same code has the same bundle id, whatever its manifest');
  assert.equal(otherEnv.sha256, plain.sha256);
  assert.notEqual(withEnv.digest, otherEnv.digest, 'a changed env is a changed upload');
  assert.deepEqual([...withEnv.files.keys()], ['index.mjs']);
  assert.equal(withEnv.manifest?.file, 'nimbus.json');
  // A manifest below the root is code like any other file.
  assert.ok(readBundleZip(zipSync({ ...code, 'lib/nimbus.json': enc('{}') })).files.has('lib/nimbus.json'));
});

test('a path that is both a file and a folder is refused, naming the path, before anything is written', () => {
  const clash = zipSync({ a: enc('file'), 'a/b.js': enc('x'), 'ok/c.js': enc('y'), 'deep/x': enc('1'), 'deep/x/y/z.js': enc('2') });
  assert.throws(
    () => readBundleZip(clash),
    (err: NimbusError) => {
      assert.equal(err.code, 'NIMBUS_INVALID_BUNDLE');
      assert.equal(err.status, 400);
      assert.match(err.message, /both a file and a folder: "a", "deep\/x"/);
      assert.deepEqual(err.details, { paths: ['a', 'deep/x'] });
      return true;
    },
  );
});

test('put() flushes every file and folder to disk before the bundle appears, then flushes its appearance', () => {
  const root = join(tempDir(), 'bundles');
  const synced: { path: string; destExisted: boolean }[] = [];
  let dest = '';
  const store = new ArtifactStore(root, {
    fsync(fd) {
      fsyncSync(fd);
      synced.push({ path: readlinkSync(`/proc/self/fd/${fd}`), destExisted: dest !== '' && existsSync(dest) });
    },
  });
  const bundle = readBundleZip(zipSync({ 'index.mjs': enc('export default 1'), 'lib/x.js': enc('x'), 'lib/deep/y.js': enc('y') }));
  dest = store.dir(bundle.sha256);
  let syncsBeforeStored = -1;
  const onStored = () => {
    syncsBeforeStored = synced.length;
  };
  subscribe(BUNDLE_STORED_CHANNEL, onStored);
  try {
    store.put(bundle);
  } finally {
    unsubscribe(BUNDLE_STORED_CHANNEL, onStored);
  }
  assert.equal(syncsBeforeStored, synced.length, `${BUNDLE_STORED_CHANNEL} is told after the last flush`);
  const tmp = synced.find((s) => s.path.endsWith('/index.mjs'))?.path.slice(0, -'/index.mjs'.length) ?? '';
  assert.ok(basename(tmp).startsWith(HALF_WRITTEN_PREFIX), `files are written under a half-written name first (${tmp})`);
  const before = synced.filter((s) => !s.destExisted).map((s) => relative(tmp, s.path));
  assert.deepEqual(new Set(before), new Set(['index.mjs', 'lib/x.js', 'lib/deep/y.js', 'lib/deep', 'lib', '']), 'every file and folder, before the rename');
  assert.ok(
    before.indexOf('lib/deep') > before.indexOf('lib/deep/y.js') && before.indexOf('lib') > before.indexOf('lib/deep'),
    'folders after what is in them',
  );
  assert.deepEqual(
    synced.filter((s) => s.destExisted).map((s) => s.path),
    [root],
    'then the bundle store folder, so the rename survives a power loss',
  );
});

test('removeHalfWritten() deletes what crashed puts and removals left, and nothing else', () => {
  const store = new ArtifactStore(join(tempDir(), 'bundles'));
  const real = store.put(readBundleZip(zipSync({ 'index.mjs': enc('export default 1') })));
  for (const name of [`${HALF_WRITTEN_PREFIX}abc-1-2`, `${HALF_WRITTEN_PREFIX}rm-def-3-4`]) {
    mkdirSync(join(store.root, name, 'lib'), { recursive: true });
    writeFileSync(join(store.root, name, 'lib', 'half.js'), 'half');
  }
  assert.deepEqual(store.removeHalfWritten().sort(), [`${HALF_WRITTEN_PREFIX}abc-1-2`, `${HALF_WRITTEN_PREFIX}rm-def-3-4`]);
  assert.deepEqual(readdirSync(store.root), [basename(real)]);
  assert.equal(readFileSync(join(real, 'index.mjs'), 'utf8'), 'export default 1');
});
