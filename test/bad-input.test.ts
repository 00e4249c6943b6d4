import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { zipSync } from 'fflate';
import { functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';

const enc = (s: string) => new TextEncoder().encode(s);
const HELLO = 'export default { fetch: () => new Response("still serving") };';

describe('bad input gets its documented status and code, and the platform keeps serving', async () => {
  const t = await startPlatform();
  await t.deploySource('canary', HELLO);
  const zipHeaders = { authorization: `Bearer ${t.platform.token}`, 'content-type': 'application/zip' };
  const goodZip = zipSync({ 'index.mjs': enc(HELLO) });

  async function expectCode(res: Response, status: number, code: string): Promise<{ message: string; details?: unknown }> {
    const body = (await res.json()) as { error: { code: string; message: string; hint: string; details?: unknown } };
    assert.equal(res.status, status, JSON.stringify(body));
    assert.equal(body.error.code, code);
    assert.ok(body.error.hint.length > 0, 'every error has a hint');
    const canary = await t.gw('/fn/canary');
    assert.equal(await canary.text(), 'still serving');
    return body.error;
  }

  const badNames = [
    ['../x', '..%2Fx'],
    ['empty', '%20'],
    ['200 chars', 'a'.repeat(200)],
    ['upper case', 'Hello'],
    ['underscore', 'my_fn'],
    ['trailing dash', 'fn-'],
  ];
  for (const [label, encoded] of badNames) {
    test(`invalid name (${label}) → 400 NIMBUS_INVALID_NAME on deploy and on invoke`, async () => {
      await expectCode(await t.admin('PUT', `/v1/functions/${encoded}`, goodZip, zipHeaders), 400, 'NIMBUS_INVALID_NAME');
      await expectCode(await t.gw(`/fn/${encoded}`), 400, 'NIMBUS_INVALID_NAME');
    });
  }

  test('a malformed %-escape in a name → 400 NIMBUS_INVALID_NAME, not a 500', async () => {
    await expectCode(await t.gw('/fn/%E0%A4%A'), 400, 'NIMBUS_INVALID_NAME');
    await expectCode(await t.admin('GET', '/v1/functions/%E0%A4%A'), 400, 'NIMBUS_INVALID_NAME');
  });

  test('invalid manifest: every problem reported at once, naming field, value and what is allowed', async () => {
    const zip = zipSync({
      'index.mjs': enc(HELLO),
      'nimbus.yaml': enc('memory: 64\ntimeout: forever\nruntime: cobol\nscale:\n  max: 0\n  concurency: 3\nextra: 1\n'),
    });
    const error = await expectCode(await t.admin('PUT', '/v1/functions/badmanifest', zip, zipHeaders), 400, 'NIMBUS_INVALID_MANIFEST');
    const fields = (error.details as { field: string; value: unknown; message: string }[]).map((d) => d.field).sort();
    assert.deepEqual(fields, ['extra', 'memory', 'runtime', 'scale.concurency', 'scale.max', 'timeout']);
    assert.match(error.message, /memory: memory \(MB\) must be at least 128 \(got 64\)/);
    assert.match(error.message, /scale\.concurency: unknown field; allowed here: min, max, concurrency, idleTimeout, window, utilization \(got 3\)/);
  });

  test('a handler that names no file → 400 NIMBUS_INVALID_MANIFEST', async () => {
    const zip = zipSync({ 'index.mjs': enc(HELLO), 'nimbus.json': enc('{"handler":"missing.handler"}') });
    await expectCode(await t.admin('PUT', '/v1/functions/nohandlerfile', zip, zipHeaders), 400, 'NIMBUS_INVALID_MANIFEST');
  });

  test('a manifest name that differs from the URL → 400 NIMBUS_NAME_MISMATCH', async () => {
    const zip = zipSync({ 'index.mjs': enc(HELLO), 'nimbus.json': enc('{"name":"other"}') });
    await expectCode(await t.admin('PUT', '/v1/functions/mine', zip, zipHeaders), 400, 'NIMBUS_NAME_MISMATCH');
  });

  for (const path of ['../evil.mjs', 'a/../../evil.mjs', '/etc/evil.mjs', 'a\\..\\evil.mjs', './index.mjs']) {
    test(`bundle with unsafe path ${JSON.stringify(path)} → 400 NIMBUS_INVALID_BUNDLE`, async () => {
      const zip = zipSync({ 'index.mjs': enc(HELLO), [path]: enc('x') });
      const error = await expectCode(await t.admin('PUT', '/v1/functions/unsafe', zip, zipHeaders), 400, 'NIMBUS_INVALID_BUNDLE');
      assert.match(error.message, /unsafe paths/);
    });
  }

  test('a body that is not a zip → 400 NIMBUS_INVALID_BUNDLE; wrong content type → 415', async () => {
    await expectCode(await t.admin('PUT', '/v1/functions/notzip', enc('hello'), zipHeaders), 400, 'NIMBUS_INVALID_BUNDLE');
    await expectCode(
      await t.admin('PUT', '/v1/functions/notzip', goodZip, { authorization: `Bearer ${t.platform.token}`, 'content-type': 'text/plain' }),
      415,
      'NIMBUS_UNSUPPORTED_MEDIA_TYPE',
    );
  });

  test('a bundle over 50 MB → 413 NIMBUS_BUNDLE_TOO_LARGE', async () => {
    const big = new Uint8Array(51 * 1024 * 1024);
    await expectCode(await t.admin('PUT', '/v1/functions/big', big, zipHeaders), 413, 'NIMBUS_BUNDLE_TOO_LARGE');
  });

  test('a zip that unpacks past the limit is refused before inflating', async () => {
    const bomb = zipSync({ 'index.mjs': enc(HELLO), 'zeros.bin': new Uint8Array(260 * 1024 * 1024) }, { level: 9 });
    assert.ok(bomb.length < 2 * 1024 * 1024);
    await expectCode(await t.admin('PUT', '/v1/functions/bomb', bomb, zipHeaders), 413, 'NIMBUS_BUNDLE_TOO_LARGE');
  });

  test('request bodies over 6 MB → 413, whether declared or streamed', async () => {
    const body = new Uint8Array(6 * 1024 * 1024 + 1);
    await expectCode(await t.gw('/fn/canary', { method: 'POST', body }), 413, 'NIMBUS_PAYLOAD_TOO_LARGE');
    const chunks = new ReadableStream({
      start(c) {
        for (let i = 0; i < 7; i++) c.enqueue(new Uint8Array(1024 * 1024));
        c.close();
      },
    });
    // A function that reads its whole body: the limit trips while the body streams in.
    await t.deploySource('reader', 'export default { async fetch(req) { return new Response(String((await req.arrayBuffer()).byteLength)); } };');
    await expectCode(await t.gw('/fn/reader', { method: 'POST', body: chunks, duplex: 'half' } as RequestInit), 413, 'NIMBUS_PAYLOAD_TOO_LARGE');
    assert.equal(await (await t.gw('/fn/reader', { method: 'POST', body: new Uint8Array(1000) })).text(), '1000');
  });

  test('missing or wrong admin token → 401 with a code', async () => {
    await expectCode(await t.admin('GET', '/v1/functions', undefined, {}), 401, 'NIMBUS_AUTH_REQUIRED');
    await expectCode(await t.admin('GET', '/v1/functions', undefined, { authorization: 'Bearer nope' }), 401, 'NIMBUS_AUTH_INVALID');
    await expectCode(await t.admin('PUT', '/v1/functions/sneaky', goodZip, { 'content-type': 'application/zip' }), 401, 'NIMBUS_AUTH_REQUIRED');
    await expectCode(await t.admin('GET', '/v1/functions', undefined, { authorization: `Basic ${t.platform.token}` }), 401, 'NIMBUS_AUTH_INVALID');
    assert.equal((await t.admin('GET', '/healthz', undefined, {})).status, 200);
  });

  test('unknown function → 404 NIMBUS_FUNCTION_NOT_FOUND on the gateway and the admin API', async () => {
    await expectCode(await t.gw('/fn/nobody-here'), 404, 'NIMBUS_FUNCTION_NOT_FOUND');
    await expectCode(await t.admin('GET', '/v1/functions/nobody-here'), 404, 'NIMBUS_FUNCTION_NOT_FOUND');
    await expectCode(await t.admin('DELETE', '/v1/functions/nobody-here'), 404, 'NIMBUS_FUNCTION_NOT_FOUND');
    await expectCode(await t.gw('/elsewhere'), 404, 'NIMBUS_NOT_FOUND');
  });

  test('bad admin requests: unknown route 404, wrong method 405, bad query 400', async () => {
    await expectCode(await t.admin('GET', '/v1/nothing'), 404, 'NIMBUS_NOT_FOUND');
    const post = await t.admin('POST', '/v1/functions');
    assert.equal(post.headers.get('allow'), 'GET');
    await expectCode(post, 405, 'NIMBUS_METHOD_NOT_ALLOWED');
    await expectCode(await t.admin('GET', '/v1/functions/canary/logs?limit=-1'), 400, 'NIMBUS_INVALID_REQUEST');
  });

  test('a source folder that does not build → NIMBUS_BUILD_FAILED naming file and line', async () => {
    const dir = functionDir({ 'index.ts': 'export default { fetch() { return new Response( } };' }, 'name: nobuild\n');
    await assert.rejects(t.deploy(dir), (err: { code: string; message: string }) => {
      assert.equal(err.code, 'NIMBUS_BUILD_FAILED');
      assert.match(err.message, /index\.ts:1:\d+/);
      return true;
    });
  });
});

testNoLeakedChildren();
