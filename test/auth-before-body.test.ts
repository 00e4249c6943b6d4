import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { eventually, functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';
import { completeResponse, exchange, headerOf, RawConnection } from './raw-http.js';

// Every refusal here must come while the client has sent no more than the request's
// head (and at most a token part of its body): the server answers, then closes the
// connection, so the announced megabytes are never sent, read or held.

const amzDate = (at = Date.now()) =>
  new Date(at)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const lines = (headers: Record<string, string | number>) =>
  Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\n`)
    .join('');

/** A well-formed SigV4 Authorization whose signature is made up: it passes every check of the head. */
function forged(date = amzDate(), service = 'lambda', signed = 'host;x-amz-date'): Record<string, string> {
  return {
    'x-amz-date': date,
    authorization: `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/${date.slice(0, 8)}/us-east-1/${service}/aws4_request, SignedHeaders=${signed}, Signature=${'0'.repeat(64)}`,
  };
}

describe('the Lambda API checks what it can before it reads a body', async () => {
  const BUDGET = 1_000_000;
  const t = await startPlatform({ lambdaUnverifiedBodyBytes: BUDGET });
  await t.deploy(functionDir({ 'index.mjs': 'export const handler = async (event) => ({ got: event });' }, 'name: echo\n'));
  const gateway = new URL(t.platform.gatewayUrl);
  const port = Number(gateway.port);
  const path = '/2015-03-31/functions/echo/invocations';
  /** Under the 6 MB invoke limit: only authentication can refuse it before the body. */
  const LARGE = 5 * 1024 * 1024;
  const head = (headers: Record<string, string | number>, length = LARGE) =>
    `POST ${path} HTTP/1.1\nHost: ${gateway.host}\nContent-Type: application/json\nContent-Length: ${length}\n${lines(headers)}\n`;

  /** Signs an invoke of `payload` with a signed X-Amz-Content-Sha256, as the AWS SDK for JavaScript does. */
  async function signed(secret: string, payload: Buffer): Promise<Record<string, string>> {
    const signer = new SignatureV4({
      credentials: { accessKeyId: 'AKID', secretAccessKey: secret },
      region: 'us-east-1',
      service: 'lambda',
      sha256: Hash.bind(null, 'sha256'),
    });
    const request = await signer.sign({
      method: 'POST',
      protocol: 'http:',
      hostname: gateway.hostname,
      port,
      path,
      headers: { host: gateway.host, 'content-type': 'application/json', 'x-amz-content-sha256': sha256(payload) },
      body: payload,
    });
    const { host: _host, 'content-type': _type, ...rest } = request.headers;
    return rest;
  }

  test('no Authorization, a malformed one, a stale date or another service: 403 before a byte of the body', async () => {
    const cases: [string, Record<string, string>, string][] = [
      ['no Authorization', {}, 'MissingAuthenticationTokenException'],
      ['a Bearer token', { authorization: 'Bearer nope' }, 'IncompleteSignatureException'],
      ['a date 20 minutes old', forged(amzDate(Date.now() - 20 * 60_000)), 'InvalidSignatureException'],
      ['a credential for s3', forged(amzDate(), 's3'), 'InvalidSignatureException'],
      ['Host not signed', forged(amzDate(), 'lambda', 'x-amz-date'), 'IncompleteSignatureException'],
      [
        'an unsigned payload',
        { ...forged(amzDate(), 'lambda', 'host;x-amz-content-sha256;x-amz-date'), 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
        'InvalidSignatureException',
      ],
    ];
    for (const [what, headers, type] of cases) {
      const r = await exchange(port, head({ ...headers, expect: '100-continue' }));
      assert.equal(r.status, 403, `${what}: ${r.text}`);
      assert.equal(headerOf(r.text, 'x-amzn-errortype'), type, what);
      assert.equal(r.continued, false, `${what}: the body is not invited`);
      assert.ok(r.closedByServer, `${what}: the connection is closed, not kept open to read the ${LARGE} bytes`);
    }
  });

  test('a signed X-Amz-Content-Sha256 with the wrong secret is refused before the body; the right one invites it', async () => {
    const payload = Buffer.from(JSON.stringify({ hello: 'world' }));
    const wrong = await exchange(port, head(await signed('not-the-token', payload), payload.length));
    assert.equal(wrong.status, 403, wrong.text);
    assert.equal(headerOf(wrong.text, 'x-amzn-errortype'), 'InvalidSignatureException');
    assert.ok(wrong.closedByServer);

    const conn = await RawConnection.open(port);
    conn.send(head({ ...(await signed(t.platform.token, payload)), expect: '100-continue' }, payload.length));
    assert.ok(await conn.until((text) => text.startsWith('HTTP/1.1 100 Continue')), 'the body is invited');
    conn.send('', payload);
    const right = await conn.result();
    assert.equal(right.status, 200, right.text);
    assert.match(right.text, /\{"got":\{"hello":"world"\}\}$/);
  });

  test('a body that is not the one whose hash was signed is refused once it has arrived', async () => {
    const payload = Buffer.from('{"amount":1}');
    const other = Buffer.from('{"amount":9}');
    const r = await exchange(port, head(await signed(t.platform.token, payload), other.length), { body: other });
    assert.equal(r.status, 403, r.text);
    assert.match(r.text, /x-amz-content-sha256 header does not match/);
  });

  test('bodies that can be verified only after they arrive share one budget; past it, 503 before the body', async () => {
    const length = 600_000;
    assert.ok(2 * length > BUDGET && length < BUDGET);
    // The first is accepted for reading: its 100 Continue comes once its share is reserved.
    const first = await RawConnection.open(port);
    first.send(head({ ...forged(), expect: '100-continue' }, length));
    assert.ok(await first.until((text) => text.startsWith('HTTP/1.1 100 Continue')));
    const second = await exchange(port, head(forged(), length));
    assert.equal(second.status, 503, second.text);
    assert.equal(headerOf(second.text, 'x-amzn-errortype'), 'ServiceException');
    assert.equal(headerOf(second.text, 'retry-after'), '1');
    assert.ok(second.closedByServer);
    // The first body arrives, its made-up signature fails, and its share is given back.
    first.send('', Buffer.alloc(length, 0x20));
    const done = await first.result();
    assert.equal(done.status, 403, done.text);
    assert.equal(headerOf(done.text, 'x-amzn-errortype'), 'InvalidSignatureException');
    const third = await exchange(port, head(forged(), length), { body: Buffer.alloc(length, 0x20) });
    assert.equal(third.status, 403, 'past the budget check, refused for its signature');
    // A client that goes away mid-body gives its share back too.
    const quitter = await RawConnection.open(port);
    quitter.send(head({ ...forged(), expect: '100-continue' }, length));
    assert.ok(await quitter.until((text) => text.startsWith('HTTP/1.1 100 Continue')));
    quitter.socket.destroy();
    const after = await exchange(port, head(forged(), length), { body: Buffer.alloc(length, 0x20) });
    assert.equal(after.status, 403, after.text);
  });

  test('over the operation limit by Content-Length: 413 before the body, even when signed', async () => {
    const r = await exchange(port, head(forged(), 7 * 1024 * 1024));
    assert.equal(r.status, 413, r.text);
    assert.equal(headerOf(r.text, 'x-amzn-errortype'), 'RequestTooLargeException');
    assert.ok(r.closedByServer);
    // An Event invoke is capped at the async limit (1 MB).
    const event = await exchange(port, head({ ...forged(), 'x-amz-invocation-type': 'Event' }, 2 * 1024 * 1024));
    assert.equal(event.status, 413, event.text);
  });
});

describe('the admin API and the OpenFaaS API authorize before they read a body', async () => {
  const t = await startPlatform();
  const admin = new URL(t.platform.adminUrl);
  const gateway = new URL(t.platform.gatewayUrl);
  /** Announced, never sent. */
  const LARGE = 40 * 1024 * 1024;
  const upload = (path: string, headers: Record<string, string | number> = {}, method = 'PUT', host = admin.host) =>
    `${method} ${path} HTTP/1.1\nHost: ${host}\nContent-Type: application/zip\nContent-Length: ${LARGE}\n${lines(headers)}\n`;

  test('an anonymous 40 MB deploy gets 401 and a closed connection, without inviting or reading the body', async () => {
    for (const [what, headers, code] of [
      ['no token, Expect: 100-continue', { expect: '100-continue' }, 'NIMBUS_AUTH_REQUIRED'],
      ['a wrong token', { authorization: 'Bearer wrong', expect: '100-continue' }, 'NIMBUS_AUTH_INVALID'],
      ['no token, no Expect', {}, 'NIMBUS_AUTH_REQUIRED'],
    ] as const) {
      const r = await exchange(Number(admin.port), upload('/v1/functions/big', headers), { body: Buffer.alloc(64 * 1024) });
      assert.equal(r.status, 401, `${what}: ${r.text}`);
      assert.equal(headerOf(r.text, 'x-nimbus-error-code'), code, what);
      assert.equal(r.continued, false, what);
      assert.ok(r.closedByServer, `${what}: closed after 64 KB of the ${LARGE} announced`);
    }
  });

  test('an anonymous bucket put and KV put are refused the same way', async () => {
    for (const path of ['/v1/buckets/photos/objects/cat.jpg', '/v1/kv/cache/keys/k']) {
      const r = await exchange(Number(admin.port), upload(path, { expect: '100-continue' }));
      assert.equal(r.status, 401, `${path}: ${r.text}`);
      assert.equal(r.continued, false);
      assert.ok(r.closedByServer, path);
    }
  });

  test('a client that keeps sending a 200 MB upload is cut off: the admin API reads almost none of it', async () => {
    const stats = t.platform.connections.admin;
    await eventually(() => stats.open() === 0, 5_000, 'earlier connections to close');
    const before = stats.bytesRead();
    const announced = 200 * 1024 * 1024;
    const conn = await RawConnection.open(Number(admin.port));
    conn.send(`PUT /v1/functions/big HTTP/1.1\nHost: ${admin.host}\nContent-Type: application/zip\nContent-Length: ${announced}\n\n`);
    // Sends as fast as the connection takes it, until the server closes it.
    const chunk = Buffer.alloc(1024 * 1024);
    let sent = 0;
    while (!conn.socket.destroyed && conn.text === '' && sent < announced) {
      sent += chunk.length;
      if (!conn.socket.write(chunk)) await new Promise((r) => conn.socket.once('drain', r).once('close', r));
    }
    const r = await conn.result();
    assert.equal(r.status, 401, r.text);
    assert.ok(r.closedByServer);
    await eventually(() => stats.open() === 0, 5_000, 'the refused connection to close');
    const read = stats.bytesRead() - before;
    assert.ok(read < 1024 * 1024, `the admin API read ${read} bytes of the ${announced} announced (the client got ${sent} out before it was cut off)`);
  });

  test('with the token, the upload is invited', async () => {
    const conn = await RawConnection.open(Number(admin.port));
    conn.send(upload('/v1/buckets/photos/objects/cat.jpg', { authorization: `Bearer ${t.platform.token}`, expect: '100-continue' }));
    assert.ok(await conn.until((text) => text.startsWith('HTTP/1.1 100 Continue')));
    conn.socket.destroy();
    assert.equal(completeResponse(conn.text), false);
  });

  test("OpenFaaS's /system API: 401 before the body", async () => {
    const r = await exchange(Number(gateway.port), upload('/system/functions', { expect: '100-continue' }, 'DELETE', gateway.host));
    assert.equal(r.status, 401, r.text);
    assert.equal(r.continued, false);
    assert.ok(r.closedByServer);
  });
});

testNoLeakedChildren();
