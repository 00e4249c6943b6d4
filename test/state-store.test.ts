import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import Database from 'better-sqlite3';
import { NimbusError } from '../src/shared/errors.js';
import { MAX_KV_VALUE_BYTES, type ObjectInfo, StateStore } from '../src/state/state-store.js';

/** A store in a fresh temp dir with a clock the test moves; closed and removed after the test. */
function open(t: TestContext, start = 1_700_000_000_000) {
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-state-'));
  const clock = { now: start };
  const stores: StateStore[] = [];
  const reopen = () => {
    const s = new StateStore(dir, { now: () => clock.now });
    stores.push(s);
    return s;
  };
  t.after(() => {
    for (const s of stores) s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, clock, store: reopen(), reopen, objectFiles: () => readdirSync(join(dir, 'objects')).sort() };
}

const isError = (code: string, status: number, message?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof NimbusError, `a NimbusError, not ${String(err)}`);
  assert.equal(err.code, code);
  assert.equal(err.status, status);
  if (message) assert.match(err.message, message);
  return true;
};

const read = async (body: Readable) => {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
};

const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

async function* chunked(data: Buffer, size: number) {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

test('KV: put, get, overwrite, delete', (t) => {
  const { store } = open(t);
  assert.equal(store.kvGet('app', 'missing'), undefined);
  store.kvPut('app', 'greeting', Buffer.from('hello'));
  assert.deepEqual(store.kvGet('app', 'greeting'), { value: Buffer.from('hello'), expiresAt: null });
  store.kvPut('app', 'greeting', Buffer.from('bye'));
  assert.equal(store.kvGet('app', 'greeting')?.value.toString(), 'bye');
  assert.equal(store.kvGet('other', 'greeting'), undefined, 'namespaces are separate');
  store.kvPut('app', 'empty', Buffer.alloc(0));
  assert.equal(store.kvGet('app', 'empty')?.value.length, 0);
  assert.equal(store.kvDelete('app', 'greeting'), true);
  assert.equal(store.kvDelete('app', 'greeting'), false);
  assert.equal(store.kvGet('app', 'greeting'), undefined);
  assert.deepEqual(store.kvNamespaces(), [{ name: 'app', keys: 1 }]);
});

test('KV: keys expire by the injected clock; expired rows are deleted on read and swept by puts', (t) => {
  const { dir, clock, store } = open(t);
  const t0 = clock.now;
  store.kvPut('ttl', 'short', Buffer.from('x'), { expiresAt: t0 + 1_000 });
  store.kvPut('ttl', 'forever', Buffer.from('y'));
  assert.deepEqual(store.kvGet('ttl', 'short'), { value: Buffer.from('x'), expiresAt: t0 + 1_000 });
  clock.now = t0 + 999;
  assert.ok(store.kvGet('ttl', 'short'));
  assert.deepEqual(store.kvList('ttl').keys, [
    { name: 'forever', expiresAt: null },
    { name: 'short', expiresAt: t0 + 1_000 },
  ]);
  clock.now = t0 + 1_000;
  assert.equal(store.kvGet('ttl', 'short'), undefined, 'expired at expiresAt');
  assert.deepEqual(store.kvList('ttl').keys, [{ name: 'forever', expiresAt: null }]);
  assert.equal(store.kvDelete('ttl', 'short'), false, 'an expired key does not count as deleted');
  assert.deepEqual(store.kvNamespaces(), [{ name: 'ttl', keys: 1 }]);

  const raw = new Database(join(dir, 'state.db'), { readonly: true });
  t.after(() => raw.close());
  const rows = () => (raw.prepare('SELECT COUNT(*) AS n FROM kv').get() as { n: number }).n;
  assert.equal(rows(), 1, 'the read deleted the expired row');

  for (let i = 0; i < 150; i++) store.kvPut('ttl', `gone-${i}`, Buffer.from('z'), { expiresAt: clock.now + 10 });
  assert.equal(rows(), 151);
  clock.now += 5_000;
  store.kvPut('ttl', 'trigger', Buffer.from('1'));
  const afterOne = rows();
  assert.ok(afterOne < 151 && afterOne > 2, `one put sweeps some expired rows, not all at once (${afterOne} left)`);
  clock.now += 5_000;
  store.kvPut('ttl', 'trigger', Buffer.from('2'));
  assert.equal(rows(), 2, 'a later put sweeps the rest');
  assert.equal(store.kvList('ttl').keys.length, 2);
});

test('KV: list pages through 2,500 keys in order with a prefix and cursors', (t) => {
  const { store } = open(t);
  const names = Array.from({ length: 2_500 }, (_, i) => `user:${String(i).padStart(4, '0')}`);
  for (const name of [...names].reverse()) store.kvPut('big', name, Buffer.from(name));
  for (const other of ['user', 'user;1', 'usea:1', 'zzz']) store.kvPut('big', other, Buffer.from('other'));

  const seen: string[] = [];
  const pages: number[] = [];
  let cursor: string | undefined;
  do {
    const page = store.kvList('big', { prefix: 'user:', cursor });
    pages.push(page.keys.length);
    seen.push(...page.keys.map((k) => k.name));
    assert.equal(page.complete, page.cursor === undefined, 'a cursor exactly when incomplete');
    cursor = page.cursor;
  } while (cursor);
  assert.deepEqual(pages, [1_000, 1_000, 500], 'the default and maximum page is 1,000');
  assert.deepEqual(seen, names);

  const small = store.kvList('big', { prefix: 'user:', limit: 3 });
  assert.deepEqual(
    small.keys.map((k) => k.name),
    ['user:0000', 'user:0001', 'user:0002'],
  );
  assert.equal(Buffer.from(small.cursor!, 'base64url').toString(), 'user:0002', 'the cursor is the last key, base64url');
  assert.equal(store.kvList('big', { limit: 5_000 }).keys.length, 1_000, 'limits over the maximum are lowered to it');
  assert.deepEqual(store.kvList('big', { prefix: 'user:2499' }), { keys: [{ name: 'user:2499', expiresAt: null }], complete: true });
  assert.throws(() => store.kvList('big', { cursor: 'not a cursor!' }), isError('NIMBUS_INVALID_REQUEST', 400, /cursor/));
  assert.throws(() => store.kvList('big', { limit: 0 }), isError('NIMBUS_INVALID_REQUEST', 400, /limit/));
});

test('KV: keys with %, _, "/", non-ASCII and astral characters sort by bytes and match prefixes exactly', (t) => {
  const { store } = open(t);
  const keys = ['%', '%a', '_', '_x', 'a%b', 'a_b', 'aXb', 'ab', 'a/b/c', 'é', 'éa', 'e', '日本', '日本語', 'a\uffff', 'a😀', '｡', '😀', 'a'];
  for (const key of keys) store.kvPut('tricky', key, Buffer.from(key));
  for (const key of keys) assert.equal(store.kvGet('tricky', key)?.value.toString(), key);
  const byBytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  assert.deepEqual(
    store.kvList('tricky').keys.map((k) => k.name),
    byBytes,
  );
  assert.ok(byBytes.indexOf('｡') < byBytes.indexOf('😀'), 'byte order, not UTF-16 order');
  const withPrefix = (prefix: string) =>
    store
      .kvList('tricky', { prefix })
      .keys.map((k) => k.name)
      .sort();
  assert.deepEqual(withPrefix('%'), ['%', '%a']);
  assert.deepEqual(withPrefix('_'), ['_', '_x']);
  assert.deepEqual(withPrefix('a_'), ['a_b']);
  assert.deepEqual(withPrefix('a%'), ['a%b']);
  assert.deepEqual(withPrefix('a'), ['a', 'a%b', 'a/b/c', 'aXb', 'a_b', 'ab', 'a\uffff', 'a😀'].sort());
  assert.deepEqual(withPrefix('é'), ['é', 'éa']);
  assert.deepEqual(withPrefix('日本'), ['日本', '日本語']);
  assert.deepEqual(withPrefix('a\uffff'), ['a\uffff']);
  // Paging through tricky keys one at a time still visits each once.
  const paged: string[] = [];
  let cursor: string | undefined;
  do {
    const page = store.kvList('tricky', { limit: 1, cursor });
    paged.push(...page.keys.map((k) => k.name));
    cursor = page.cursor;
  } while (cursor);
  assert.deepEqual(paged, byBytes);
});

test('KV: bad keys, names and values are refused with their codes', (t) => {
  const { store } = open(t);
  assert.throws(() => store.kvPut('app', '', Buffer.from('x')), isError('NIMBUS_INVALID_KEY', 400, /512 bytes/));
  assert.throws(() => store.kvPut('app', 'a\0b', Buffer.from('x')), isError('NIMBUS_INVALID_KEY', 400, /NUL/));
  assert.throws(() => store.kvPut('app', 'k'.repeat(513), Buffer.from('x')), isError('NIMBUS_INVALID_KEY', 400, /513 bytes.*512 bytes/));
  assert.throws(() => store.kvGet('app', '日'.repeat(171)), isError('NIMBUS_INVALID_KEY', 400, /513 bytes/), '171 three-byte characters are 513 bytes');
  assert.throws(() => store.kvPut('app', '\ud800', Buffer.from('x')), isError('NIMBUS_INVALID_KEY', 400, /Unicode/));
  store.kvPut('app', 'k'.repeat(512), Buffer.from('max'));
  assert.equal(store.kvGet('app', 'k'.repeat(512))?.value.toString(), 'max');
  assert.throws(() => store.kvPut('Bad_Name', 'k', Buffer.from('x')), isError('NIMBUS_INVALID_NAME', 400, /namespace/));
  assert.throws(() => store.kvList('-x'), isError('NIMBUS_INVALID_NAME', 400, /namespace/));
  assert.throws(() => store.kvPut('app', 'big', Buffer.alloc(MAX_KV_VALUE_BYTES + 1)), isError('NIMBUS_PAYLOAD_TOO_LARGE', 413));
  assert.equal(store.kvGet('app', 'big'), undefined);
});

test('objects: a streamed multi-MB put goes to disk as it arrives; etag, head, get and ranges', async (t) => {
  const { clock, store, dir, objectFiles } = open(t);
  const data = randomBytes(5 * 1024 * 1024 + 123);
  let sawTempFileGrow = false;
  async function* body() {
    for (let i = 0; i < data.length; i += 64 * 1024) {
      if (i >= 1024 * 1024 && !sawTempFileGrow) {
        const temp = readdirSync(join(dir, 'objects')).filter((f) => f.endsWith('.tmp'));
        sawTempFileGrow = temp.length === 1;
      }
      yield data.subarray(i, i + 64 * 1024);
    }
  }
  const info = await store.putObject('media', 'videos/2024/clip #1 ü.bin', body(), { contentType: 'video/mp4', customMetadata: { owner: 'ana' } });
  assert.ok(sawTempFileGrow, 'the body is written to a temp file while it streams');
  const expected: ObjectInfo = {
    bucket: 'media',
    key: 'videos/2024/clip #1 ü.bin',
    size: data.length,
    etag: md5(data),
    contentType: 'video/mp4',
    customMetadata: { owner: 'ana' },
    uploadedAt: clock.now,
  };
  assert.deepEqual(info, expected);
  assert.deepEqual(store.headObject('media', 'videos/2024/clip #1 ü.bin'), expected);
  assert.equal(objectFiles().length, 1);
  assert.ok(!objectFiles()[0].includes('videos'), 'the file is not named after the key');

  const got = store.getObject('media', 'videos/2024/clip #1 ü.bin')!;
  assert.deepEqual(got.info, expected);
  assert.ok((await read(got.body)).equals(data));

  const ranged = async (offset: number, length?: number) => read(store.getObject('media', expected.key, { offset, length })!.body);
  assert.ok((await ranged(10, 100)).equals(data.subarray(10, 110)));
  assert.ok((await ranged(data.length - 5)).equals(data.subarray(-5)));
  assert.ok((await ranged(data.length - 5, 1_000)).equals(data.subarray(-5)), 'a length past the end stops at the end');
  assert.equal((await ranged(data.length)).length, 0);
  assert.equal((await ranged(7, 0)).length, 0);
  assert.throws(() => store.getObject('media', expected.key, { offset: data.length + 1 }), isError('NIMBUS_INVALID_REQUEST', 416));
  assert.throws(() => store.getObject('media', expected.key, { offset: -1 }), isError('NIMBUS_INVALID_REQUEST', 400));

  assert.equal(store.headObject('media', 'nope'), undefined);
  assert.equal(store.getObject('media', 'nope'), undefined);
  const empty = await store.putObject('media', 'empty', Buffer.alloc(0));
  assert.equal(empty.etag, md5(Buffer.alloc(0)));
  assert.equal((await read(store.getObject('media', 'empty')!.body)).length, 0);
  assert.deepEqual(store.buckets(), [{ name: 'media', objects: 2, bytes: data.length }]);
});

test('objects: list with prefix, delimiter and cursor, as R2 and S3 do', async (t) => {
  const { store } = open(t);
  const keys = ['photos/2024/a.jpg', 'photos/2024/b.jpg', 'photos/2025/c.jpg', 'photos/top.jpg', 'photos%/x', 'photos_y', 'readme', 'photos/日本/d.jpg'];
  for (const key of keys) await store.putObject('pics', key, Buffer.from(key));

  const folded = store.listObjects('pics', { prefix: 'photos/', delimiter: '/' });
  assert.deepEqual(
    folded.objects.map((o) => o.key),
    ['photos/top.jpg'],
  );
  assert.deepEqual(folded.delimitedPrefixes, ['photos/2024/', 'photos/2025/', 'photos/日本/']);
  assert.equal(folded.truncated, false);
  assert.equal(folded.cursor, undefined);

  const top = store.listObjects('pics', { delimiter: '/' });
  assert.deepEqual(
    top.objects.map((o) => o.key),
    ['photos_y', 'readme'],
  );
  assert.deepEqual(top.delimitedPrefixes, ['photos%/', 'photos/']);

  // One entry per page: prefixes and objects both count, and a folded prefix is skipped whole.
  const entries: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 10; page++) {
    const res = store.listObjects('pics', { prefix: 'photos/', delimiter: '/', limit: 1, cursor });
    assert.equal(res.objects.length + res.delimitedPrefixes.length, 1);
    entries.push(...res.delimitedPrefixes, ...res.objects.map((o) => o.key));
    assert.equal(res.truncated, res.cursor !== undefined);
    cursor = res.cursor;
    if (!cursor) break;
  }
  assert.deepEqual(entries, ['photos/2024/', 'photos/2025/', 'photos/top.jpg', 'photos/日本/']);

  const flat: string[] = [];
  cursor = undefined;
  do {
    const res = store.listObjects('pics', { limit: 3, cursor });
    assert.deepEqual(res.delimitedPrefixes, []);
    flat.push(...res.objects.map((o) => o.key));
    cursor = res.cursor;
  } while (cursor);
  assert.deepEqual(
    flat,
    [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
  );
  assert.deepEqual(
    store.listObjects('pics', { prefix: 'photos_' }).objects.map((o) => o.key),
    ['photos_y'],
  );
  assert.equal(store.listObjects('pics', { prefix: 'photos/2024/', limit: 2 }).truncated, false, 'exactly a full page is not truncated');
  assert.deepEqual(store.listObjects('empty-bucket'), { objects: [], delimitedPrefixes: [], truncated: false });
  assert.throws(() => store.listObjects('pics', { cursor: '***' }), isError('NIMBUS_INVALID_REQUEST', 400));
  assert.throws(() => store.listObjects('Pics'), isError('NIMBUS_INVALID_NAME', 400, /bucket/));
});

test('objects: overwrite replaces the file, delete removes it, and an open stream survives a delete', async (t) => {
  const { store, objectFiles } = open(t);
  await store.putObject('b', 'k', Buffer.from('first version'));
  const [firstFile] = objectFiles();
  await store.putObject('b', 'k', Buffer.from('second'));
  assert.equal(objectFiles().length, 1, 'the replaced file is gone');
  assert.notEqual(objectFiles()[0], firstFile);
  assert.equal((await read(store.getObject('b', 'k')!.body)).toString(), 'second');

  await Promise.all([store.putObject('b', 'race', Buffer.from('one')), store.putObject('b', 'race', Buffer.from('two'))]);
  assert.equal(objectFiles().length, 2, 'concurrent puts to one key leave one file');
  assert.match((await read(store.getObject('b', 'race')!.body)).toString(), /^(one|two)$/);

  const big = randomBytes(1024 * 1024);
  await store.putObject('b', 'big', big);
  const open1 = store.getObject('b', 'big')!;
  assert.equal(await store.deleteObject('b', 'big'), true);
  assert.ok((await read(open1.body)).equals(big), 'the stream opened before the delete reads everything');
  assert.equal(store.headObject('b', 'big'), undefined);
  assert.equal(await store.deleteObject('b', 'big'), false);
  assert.equal(objectFiles().length, 2);
  assert.equal(await store.deleteObject('b', 'k'), true);
  assert.equal(objectFiles().length, 1);
  assert.deepEqual(store.buckets(), [{ name: 'b', objects: 1, bytes: 3 }]);
});

test('objects: over maxBytes is a 413 and leaves no file; a failing body leaves none either', async (t) => {
  const { store, objectFiles } = open(t);
  await assert.rejects(store.putObject('b', 'k', chunked(randomBytes(1_200), 600), { maxBytes: 1_000 }), isError('NIMBUS_PAYLOAD_TOO_LARGE', 413));
  await assert.rejects(store.putObject('b', 'k', randomBytes(1_001), { maxBytes: 1_000 }), isError('NIMBUS_PAYLOAD_TOO_LARGE', 413));
  assert.deepEqual(objectFiles(), []);
  assert.equal(store.headObject('b', 'k'), undefined);

  async function* failing() {
    yield Buffer.from('partial');
    throw new Error('client went away');
  }
  await assert.rejects(store.putObject('b', 'k', failing()), /client went away/);
  assert.deepEqual(objectFiles(), []);
  assert.deepEqual(store.pendingChanges(10), []);

  const exact = await store.putObject('b', 'k', chunked(randomBytes(1_000), 300), { maxBytes: 1_000 });
  assert.equal(exact.size, 1_000, 'exactly maxBytes is allowed');
  await assert.rejects(store.putObject('b', 'k'.repeat(1_025), Buffer.from('x')), isError('NIMBUS_INVALID_KEY', 400, /1024 bytes/));
  await assert.rejects(store.putObject('Bad', 'k', Buffer.from('x')), isError('NIMBUS_INVALID_NAME', 400, /bucket/));
});

test('objects: the change outbox lists changes in order until acknowledged, and onChange fires after each commit', async (t) => {
  const { clock, store } = open(t);
  const calls: number[] = [];
  store.onChange = () => calls.push(store.pendingChanges(100).length);
  const a = await store.putObject('b', 'a', Buffer.from('A'), { contentType: 'text/plain' });
  clock.now += 1;
  await store.putObject('b', 'b', Buffer.from('B'));
  clock.now += 1;
  await store.deleteObject('b', 'a');
  await store.deleteObject('b', 'missing');
  assert.deepEqual(calls, [1, 2, 3], 'called once per committed change, after the commit');

  const changes = store.pendingChanges(10);
  assert.deepEqual(
    changes.map((c) => [c.action, c.object.key, c.at]),
    [
      ['created', 'a', clock.now - 2],
      ['created', 'b', clock.now - 1],
      ['deleted', 'a', clock.now],
    ],
  );
  assert.ok(changes[0].id < changes[1].id && changes[1].id < changes[2].id);
  assert.deepEqual(changes[2].object, a, 'a deletion carries the info the object had');
  assert.deepEqual(
    store.pendingChanges(2).map((c) => c.id),
    [changes[0].id, changes[1].id],
  );
  store.ackChanges([changes[0].id, changes[1].id]);
  assert.deepEqual(
    store.pendingChanges(10).map((c) => c.id),
    [changes[2].id],
  );
  store.ackChanges([changes[2].id, 999_999]);
  assert.deepEqual(store.pendingChanges(10), []);
  await store.putObject('b', 'c', Buffer.from('C'));
  assert.ok(store.pendingChanges(1)[0].id > changes[2].id, 'ids are never reused');
});

test('reopening keeps KV, objects and pending changes; leftover temp and orphan files are removed', async (t) => {
  const { dir, store, reopen, objectFiles } = open(t);
  store.kvPut('app', 'k', Buffer.from('v'));
  const data = randomBytes(300_000);
  await store.putObject('b', 'dir/obj', chunked(data, 10_000), { customMetadata: { a: '1' } });
  const [kept] = objectFiles();
  store.close();
  store.close();

  writeFileSync(join(dir, 'objects', 'crashed-upload.tmp'), 'half');
  writeFileSync(join(dir, 'objects', 'deadbeef-orphan'), 'no row points here');
  const again = reopen();
  assert.deepEqual(objectFiles(), [kept]);
  assert.ok(!existsSync(join(dir, 'objects', 'crashed-upload.tmp')));
  assert.equal(again.kvGet('app', 'k')?.value.toString(), 'v');
  const got = again.getObject('b', 'dir/obj')!;
  assert.deepEqual(got.info.customMetadata, { a: '1' });
  assert.equal(got.info.etag, md5(data));
  assert.ok((await read(got.body)).equals(data));
  assert.deepEqual(
    again.pendingChanges(10).map((c) => [c.action, c.object.key]),
    [['created', 'dir/obj']],
  );
});
