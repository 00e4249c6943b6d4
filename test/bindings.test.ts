import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CLI, cleanEnv, eventually, functionDir, startPlatform, tempDir, testNoLeakedChildren } from './helpers.js';

/** A Workers function that drives its KV and bucket bindings from the query string. */
const STATEFUL = `
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const op = url.searchParams.get('op');
    const key = url.searchParams.get('key');
    switch (op) {
      case 'kv-put': await env.CACHE.put(key, await request.text(), url.searchParams.has('ttl') ? { expirationTtl: Number(url.searchParams.get('ttl')) } : {}); return new Response('ok');
      case 'kv-get': { const v = await env.CACHE.get(key, url.searchParams.get('type') ?? 'text'); return Response.json({ v }); }
      case 'kv-list': return Response.json(await env.CACHE.list({ prefix: url.searchParams.get('prefix') ?? undefined, limit: Number(url.searchParams.get('limit') ?? 1000), cursor: url.searchParams.get('cursor') ?? undefined }));
      case 'kv-del': await env.CACHE.delete(key); return new Response('ok');
      case 'kv-try': try { return Response.json({ v: await env.CACHE.get(key) }); } catch (err) { return Response.json({ error: err.message }); }
      case 'put': {
        const o = await env.FILES.put(key, request.body, { httpMetadata: { contentType: request.headers.get('content-type') }, customMetadata: { by: 'fn' } });
        return Response.json({ key: o.key, size: o.size, etag: o.etag, uploaded: o.uploaded instanceof Date });
      }
      case 'get': {
        const o = await env.FILES.get(key);
        if (!o) return new Response('none', { status: 404 });
        return new Response(o.body, { headers: { 'content-type': o.httpMetadata.contentType ?? 'x/none', etag: o.httpEtag, 'x-by': o.customMetadata.by ?? '' } });
      }
      case 'head': { const o = await env.FILES.head(key); return Response.json(o && { size: o.size, etag: o.etag }); }
      case 'list': { const l = await env.FILES.list({ prefix: url.searchParams.get('prefix') ?? undefined, delimiter: url.searchParams.get('delimiter') ?? undefined }); return Response.json({ keys: l.objects.map((o) => o.key), prefixes: l.delimitedPrefixes, truncated: l.truncated }); }
      case 'del': await env.FILES.delete(key); return new Response('ok');
      case 'other': return new Response(typeof env.OTHER);
      case 'raw': {
        // The state API by hand, with the given Authorization (or none).
        const auth = url.searchParams.get('auth');
        const res = await fetch(process.env.NIMBUS_STATE_URL + '/v1/kv/CACHE/keys/user:1', auth ? { headers: { authorization: auth } } : {});
        return Response.json({ status: res.status, url: process.env.NIMBUS_STATE_URL });
      }
    }
    return new Response('unknown op', { status: 400 });
  },
};`;

/** Watches the bucket: Workers get R2 notifications through queue(). */
const WATCHER = `
export default {
  async fetch() { return new Response('ok'); },
  async queue(batch) {
    for (const m of batch.messages) console.log('change', batch.queue, m.body.action, m.body.object.key, m.body.object.size);
  },
};`;

/** Lambda gets S3 notifications. */
const S3_WATCHER = `
export const handler = async (event) => {
  for (const r of event.Records) console.log('s3', r.eventSource, r.eventName, r.s3.bucket.name, r.s3.object.key, r.s3.object.size);
};`;

/** Python reaches the same state over the local endpoint with its per-instance token. */
const PYTHON_KV = `
import json, os, urllib.error, urllib.request

def handler(event, context):
    base = os.environ["NIMBUS_STATE_URL"] + "/v1/kv/CACHE/keys/"
    auth = {"Authorization": "Bearer " + os.environ["NIMBUS_STATE_TOKEN"]}
    put = urllib.request.Request(base + "from-python", data=b"hello from python", method="PUT", headers=auth)
    urllib.request.urlopen(put).read()
    got = urllib.request.urlopen(urllib.request.Request(base + "shared", headers=auth)).read().decode()
    try:
        urllib.request.urlopen(urllib.request.Request(os.environ["NIMBUS_STATE_URL"] + "/v1/kv/NOT_BOUND/keys/x", headers=auth))
        unbound = None
    except urllib.error.HTTPError as e:
        unbound = [e.code, json.loads(e.read())["error"]["code"]]
    return {"shared": got, "unbound": unbound}
`;

describe('state: KV namespaces and buckets, bound to functions', async () => {
  const t = await startPlatform({ events: { retryBaseMs: 20, retryMaxMs: 50 } });
  await t.deploy(functionDir({ 'index.js': STATEFUL }, 'name: stateful\nbindings:\n  CACHE: { kv: cache }\n  FILES: { bucket: uploads }\n'));
  await t.deploy(functionDir({ 'index.js': WATCHER }, 'name: watcher\ntriggers:\n  buckets:\n    - bucket: uploads\n      prefix: images/\n'));
  await t.deploy(functionDir({ 'index.js': S3_WATCHER }, 'name: s3-watcher\ntriggers:\n  buckets:\n    - bucket: uploads\n      events: [deleted]\n'));
  const fn = (query: string, init?: RequestInit) => t.gw(`/fn/stateful?${query}`, init);
  const lines = async (name: string, prefix: string) => (await t.logs(name, { limit: '1000' })).map((l) => l.line).filter((l) => l.startsWith(prefix));

  test('KV: put, get (text, json), list with prefix and cursor, delete, TTL', async () => {
    assert.equal((await fn('op=kv-put&key=user:1', { method: 'POST', body: '{"name":"Ada"}' })).status, 200);
    assert.deepEqual(await (await fn('op=kv-get&key=user:1&type=json')).json(), { v: { name: 'Ada' } });
    assert.deepEqual(await (await fn('op=kv-get&key=missing')).json(), { v: null });
    // "." and ".." cannot be keys (a URL would read them as the namespace itself): refused, not a listing.
    assert.deepEqual(await (await fn('op=kv-try&key=.')).json(), { error: 'NIMBUS_INVALID_KEY: a key cannot be "."' });
    assert.deepEqual(await (await fn('op=kv-try&key=..')).json(), { error: 'NIMBUS_INVALID_KEY: a key cannot be ".."' });
    for (let i = 0; i < 5; i++) await fn(`op=kv-put&key=page:${i}`, { method: 'POST', body: String(i) });
    const first = (await (await fn('op=kv-list&prefix=page:&limit=2')).json()) as { keys: { name: string }[]; list_complete: boolean; cursor: string };
    assert.deepEqual(
      first.keys.map((k) => k.name),
      ['page:0', 'page:1'],
    );
    assert.equal(first.list_complete, false);
    const rest = (await (await fn(`op=kv-list&prefix=page:&cursor=${encodeURIComponent(first.cursor)}`)).json()) as {
      keys: { name: string }[];
      list_complete: boolean;
    };
    assert.deepEqual(
      rest.keys.map((k) => k.name),
      ['page:2', 'page:3', 'page:4'],
    );
    assert.equal(rest.list_complete, true);
    await fn('op=kv-del&key=page:0');
    assert.deepEqual(await (await fn('op=kv-get&key=page:0')).json(), { v: null });
    // The admin API sees the same namespace; a TTL shows as the key's expiration.
    await fn('op=kv-put&key=short&ttl=60', { method: 'POST', body: 'x' });
    const listed = (await (await t.admin('GET', '/v1/kv/cache/keys?prefix=short')).json()) as { keys: { name: string; expiration: number }[] };
    assert.equal(listed.keys.length, 1);
    assert.ok(Math.abs(listed.keys[0].expiration - (Date.now() / 1000 + 60)) < 5, `expiration about a minute away: ${listed.keys[0].expiration}`);
    const direct = await t.admin('GET', '/v1/kv/cache/keys/user%3A1');
    assert.equal(await direct.text(), '{"name":"Ada"}');
  });

  test('buckets: a streamed put and get, head, list with a delimiter, delete', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 7, 'abc');
    const md5 = createHash('md5').update(data).digest('hex');
    const put = (await (await fn('op=put&key=images/cat.jpg', { method: 'POST', body: data, headers: { 'content-type': 'image/jpeg' } })).json()) as Record<
      string,
      unknown
    >;
    assert.deepEqual(put, { key: 'images/cat.jpg', size: data.length, etag: md5, uploaded: true });
    const got = await fn('op=get&key=images/cat.jpg');
    assert.equal(got.headers.get('content-type'), 'image/jpeg');
    assert.equal(got.headers.get('etag'), `"${md5}"`);
    assert.equal(got.headers.get('x-by'), 'fn');
    assert.equal(
      createHash('md5')
        .update(Buffer.from(await got.arrayBuffer()))
        .digest('hex'),
      md5,
    );
    assert.deepEqual(await (await fn('op=head&key=images/cat.jpg')).json(), { size: data.length, etag: md5 });
    assert.equal(await (await fn('op=head&key=images/none.jpg')).text(), 'null', 'head() of a missing object is null');
    await fn('op=put&key=docs/a.txt', { method: 'POST', body: 'a' });
    assert.deepEqual(await (await fn('op=list&delimiter=/')).json(), { keys: [], prefixes: ['docs/', 'images/'], truncated: false });
    assert.deepEqual(await (await fn('op=list&prefix=images/')).json(), { keys: ['images/cat.jpg'], prefixes: [], truncated: false });
    // Range reads through the admin API.
    const part = await t.admin('GET', '/v1/buckets/uploads/objects/images%2Fcat.jpg', undefined, {
      authorization: `Bearer ${t.platform.token}`,
      range: 'bytes=0-2',
    });
    assert.equal(part.status, 206);
    assert.equal(await part.text(), 'abc');
    await fn('op=del&key=docs/a.txt');
    assert.equal((await fn('op=get&key=docs/a.txt')).status, 404);
  });

  test('object changes trigger the functions that watch them (prefix and event filters)', async () => {
    const changes = await eventually(async () => {
      const l = await lines('watcher', 'change');
      return l.length >= 1 ? l : undefined;
    });
    assert.deepEqual(changes, [`change uploads PutObject images/cat.jpg ${3 * 1024 * 1024 + 7}`], 'docs/a.txt is outside the prefix');
    const s3 = await eventually(async () => {
      const l = await lines('s3-watcher', 's3');
      return l.length >= 1 ? l : undefined;
    });
    assert.deepEqual(s3, ['s3 aws:s3 ObjectRemoved:Delete uploads docs/a.txt 1'], 'only deletions, as configured');
    await fn('op=del&key=images/cat.jpg');
    await eventually(async () => (await lines('watcher', 'change')).includes('change uploads DeleteObject images/cat.jpg 3145735') || undefined);
  });

  test('a function reaches only what it binds; tokens are per instance and die with it', async () => {
    assert.equal(await (await fn('op=other')).text(), 'undefined');
    // The endpoint is reached through the instance's own channel: the URL is the instance's relay, inside its sandbox.
    const noToken = (await (await fn('op=raw')).json()) as { status: number; url: string };
    assert.match(noToken.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(noToken.status, 401);
    const adminToken = (await (await fn(`op=raw&auth=${encodeURIComponent(`Bearer ${t.platform.token}`)}`)).json()) as { status: number };
    assert.equal(adminToken.status, 401, 'the admin token is not a function credential');
    assert.ok(t.platform.stateEndpoint.grants >= 1);
    await t.admin('DELETE', '/v1/functions/stateful');
    await eventually(() => t.platform.stateEndpoint.grants === 0 || undefined, 5_000, 'credentials revoked when the instances exit');
  });

  test('Python reaches the same KV over the local endpoint; an unbound name is 403', async () => {
    await t.admin('PUT', '/v1/kv/cache/keys/shared', 'set by the admin', { authorization: `Bearer ${t.platform.token}` });
    await t.deploy(functionDir({ 'handler.py': PYTHON_KV }, 'name: py-kv\nruntime: python\nhandler: handler.handler\nbindings:\n  CACHE: { kv: cache }\n'));
    const res = await t.gw('/fn/py-kv', { method: 'POST', body: '{}' });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { shared: 'set by the admin', unbound: [403, 'NIMBUS_UNAUTHORIZED_BINDING'] });
    assert.equal(await (await t.admin('GET', '/v1/kv/cache/keys/from-python')).text(), 'hello from python');
  });

  test('the CLI: kv and bucket commands', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, ...args, '--url', t.platform.adminUrl, '--token', t.platform.token], { env: cleanEnv() });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
      });
    assert.equal((await run(['kv', 'put', 'cache', 'greeting', 'hi there'])).code, 0);
    assert.equal((await run(['kv', 'get', 'cache', 'greeting'])).out, 'hi there');
    assert.match((await run(['kv', 'ls'])).out, /cache\s+\d+/);
    assert.match((await run(['kv', 'ls', 'cache', '--prefix', 'greet'])).out, /greeting/);
    assert.equal((await run(['kv', 'rm', 'cache', 'greeting'])).code, 0);
    const missing = await run(['kv', 'get', 'cache', 'greeting']);
    assert.equal(missing.code, 4);
    assert.match(missing.err, /NIMBUS_KEY_NOT_FOUND/);
    const dir = tempDir('nimbus-cli-bucket-');
    const file = join(dir, 'blob.bin');
    const data = Buffer.alloc(2 * 1024 * 1024, 7);
    writeFileSync(file, data);
    const put = await run(['bucket', 'put', 'backups', 'day/1.bin', file, '--content-type', 'application/x-test']);
    assert.equal(put.code, 0, put.err);
    assert.match(put.out, new RegExp(`Stored day/1.bin in backups \\(${data.length} bytes`));
    const head = await run(['bucket', 'head', 'backups', 'day/1.bin', '--json']);
    assert.deepEqual(
      { size: JSON.parse(head.out).size, contentType: JSON.parse(head.out).contentType },
      { size: data.length, contentType: 'application/x-test' },
    );
    const out = join(dir, 'back.bin');
    assert.equal((await run(['bucket', 'get', 'backups', 'day/1.bin', out])).code, 0);
    assert.match((await run(['bucket', 'ls', 'backups', '--delimiter', '/'])).out, /day\//);
    assert.equal((await run(['bucket', 'rm', 'backups', 'day/1.bin'])).code, 0);
    assert.equal((await run(['bucket', 'head', 'backups', 'day/1.bin'])).code, 4);
  });

  test('bad input: invalid names and keys, oversized values', async () => {
    const bad = await t.admin('PUT', '/v1/kv/Bad_Name/keys/x', 'v', { authorization: `Bearer ${t.platform.token}` });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'NIMBUS_INVALID_NAME');
    const longKey = await t.admin('PUT', `/v1/kv/cache/keys/${'k'.repeat(513)}`, 'v', { authorization: `Bearer ${t.platform.token}` });
    assert.equal(longKey.status, 400);
    assert.equal(((await longKey.json()) as { error: { code: string } }).error.code, 'NIMBUS_INVALID_KEY');
    const badTtl = await t.admin('PUT', '/v1/kv/cache/keys/x?ttl=0', 'v', { authorization: `Bearer ${t.platform.token}` });
    assert.equal(badTtl.status, 400);
    // Paths are read as sent: dot segments are not resolved into another key or a listing.
    const raw = (method: string, path: string, body?: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
        // Options, not a URL string: Node would normalise a URL's dot segments before sending.
        const { hostname, port } = new URL(t.platform.adminUrl);
        const req = request({ hostname, port, path, method, headers: { authorization: `Bearer ${t.platform.token}`, ...headers } }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const dot = await raw('GET', '/v1/kv/cache/keys/%2E');
    assert.equal(dot.status, 400);
    assert.equal(JSON.parse(dot.body).error.code, 'NIMBUS_INVALID_KEY');
    assert.equal((await raw('PUT', '/v1/kv/cache/keys/a/../b', 'literal')).status, 204);
    assert.equal((await raw('GET', '/v1/kv/cache/keys/a%2F..%2Fb')).body, 'literal', 'the key is "a/../b", not "b"');
    // A range of no bytes is 416 and says the size.
    assert.equal((await raw('PUT', '/v1/buckets/uploads/objects/ten', '0123456789')).status, 200);
    for (const range of ['bytes=-0', 'bytes=10-']) {
      const r = await raw('GET', '/v1/buckets/uploads/objects/ten', undefined, { range });
      assert.equal(r.status, 416, range);
      assert.equal(r.headers['content-range'], 'bytes */10');
      assert.equal(r.headers['x-nimbus-error-code'], 'NIMBUS_RANGE_NOT_SATISFIABLE');
    }
    assert.equal((await raw('GET', '/v1/buckets/uploads/objects/ten', undefined, { range: 'bytes=-3' })).body, '789');
    const noObject = await t.admin('GET', '/v1/buckets/uploads/objects/nothing-here');
    assert.equal(noObject.status, 404);
    assert.equal(((await noObject.json()) as { error: { code: string } }).error.code, 'NIMBUS_OBJECT_NOT_FOUND');
  });

  testNoLeakedChildren();
});
