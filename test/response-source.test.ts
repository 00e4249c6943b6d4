import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bufferedBody, installResponseSource, NativeResponse } from '../src/runtimes/node/styles/response-source.js';

// The Workers adapter installs this Response in every instance; here it must behave as
// the native one does for everything a handler can do with it, while a body given as a
// string or bytes reaches the shim as one buffer without a stream.
installResponseSource();

describe('Response with its source kept aside (Workers instances)', () => {
  test('a string body: the default content type, one buffer for the shim, the body still readable', async () => {
    const r = new Response('hi');
    assert.ok(r instanceof NativeResponse);
    assert.equal(r.headers.get('content-type'), 'text/plain;charset=UTF-8');
    assert.equal(r.bodyUsed, false);
    assert.equal(bufferedBody(r)?.toString(), 'hi');
    assert.equal(await r.text(), 'hi');
    assert.equal(r.bodyUsed, true);
    // Read by the handler: the shim must not send it again from the source.
    assert.equal(bufferedBody(r), undefined);
    await assert.rejects(r.text(), TypeError);
  });

  test('an explicit content type, a status and headers are kept', async () => {
    const r = new Response('{"a":1}', { status: 201, statusText: 'Made', headers: { 'content-type': 'application/json', x: '1' } });
    assert.equal(r.status, 201);
    assert.equal(r.statusText, 'Made');
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(await r.json(), { a: 1 });
  });

  test('bytes are copied when the Response is made, as the standard says; no content type', () => {
    const bytes = new Uint8Array([104, 105]);
    const r = new Response(bytes);
    bytes[0] = 0;
    assert.equal(bufferedBody(r)?.toString(), 'hi');
    assert.equal(r.headers.get('content-type'), null);
    const ab = new Uint8Array([111, 107]).buffer;
    assert.equal(bufferedBody(new Response(ab))?.toString(), 'ok');
  });

  test('body is a stream when asked for, and then the shim streams it', async () => {
    const r = new Response('streamed');
    assert.ok(r.body instanceof ReadableStream);
    assert.equal(bufferedBody(r), undefined);
    const chunks: Uint8Array[] = [];
    for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) chunks.push(chunk);
    assert.equal(Buffer.concat(chunks).toString(), 'streamed');
    assert.equal(r.bodyUsed, true);
  });

  test('clone(): both copies read the whole body, before or after the body was touched', async () => {
    const a = new Response('tee', { status: 202, headers: { x: 'y' } });
    const b = a.clone();
    assert.equal(b.status, 202);
    assert.equal(b.headers.get('x'), 'y');
    assert.equal(await a.text(), 'tee');
    assert.equal(await b.text(), 'tee');
    const c = new Response('touched');
    void c.body;
    const d = c.clone();
    assert.equal(await d.text(), 'touched');
    assert.equal(await c.text(), 'touched');
    assert.throws(() => c.clone(), TypeError);
  });

  test('formData() and blob() see the content type', async () => {
    const form = new Response('a=1&b=2', { headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal((await form.formData()).get('b'), '2');
    const blob = await new Response('xyz').blob();
    assert.equal(blob.size, 3);
    assert.match(blob.type, /^text\/plain/);
  });

  test('Response.json() sets application/json unless given a type', async () => {
    const r = Response.json({ ok: true }, { status: 418 });
    assert.equal(r.status, 418);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(bufferedBody(r)?.toString(), '{"ok":true}');
    assert.equal(Response.json(1, { headers: { 'content-type': 'application/x+json' } }).headers.get('content-type'), 'application/x+json');
  });

  test('a body with a null-body status is refused, as natively; no body is fine', () => {
    assert.throws(() => new Response('x', { status: 204 }), TypeError);
    assert.throws(() => new NativeResponse('x', { status: 204 }), TypeError);
    const empty = new Response(null, { status: 204 });
    assert.equal(empty.status, 204);
    assert.equal(bufferedBody(empty), null);
    assert.equal(bufferedBody(new Response()), null);
  });

  test('streams and Responses made elsewhere stay native', async () => {
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('st'));
        controller.close();
      },
    });
    const r = new Response(stream);
    assert.equal(bufferedBody(r), undefined);
    assert.equal(await r.text(), 'st');
    const redirect = Response.redirect('https://example.com/', 302);
    assert.ok(redirect instanceof Response);
    assert.equal(redirect.headers.get('location'), 'https://example.com/');
    assert.equal(bufferedBody(redirect), null);
  });
});
