import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { after, describe, test } from 'node:test';
import { parseCidr } from '../src/config/edge.js';
import { CallbackPolicy } from '../src/events/callback-policy.js';
import { Platform } from '../src/platform.js';
import { CLI, cleanEnv, eventually, startPlatform, tempDir, testNoLeakedChildren } from './helpers.js';

const DONE = 'export default { fetch: () => new Response("done", { headers: { "x-made-by": "fn" } }) };';

/** Stands in for DNS (which we do not own): names the tests use, resolved to loopback only. */
const NAMES: Record<string, { address: string; family: 4 | 6 }[]> = {
  'rebind.test': [{ address: '127.0.0.1', family: 4 }],
  'dual.test': [
    { address: '::1', family: 6 },
    { address: '127.0.0.1', family: 4 },
  ],
};
const testLookup: LookupFunction = (hostname, options, callback) => {
  const found = NAMES[hostname];
  if (!found) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '');
  if (options.all) callback(null, found);
  else callback(null, found[0].address, found[0].family);
};

/** A callback receiver on 127.0.0.1 that counts every connection made to it. */
async function receiver() {
  const received: { url: string; headers: IncomingMessage['headers']; body: string }[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ url: req.url ?? '', headers: req.headers, body });
      res.end();
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { port, received, connections: () => connections, close: () => new Promise((r) => server.close(r)) };
}

interface InvocationRecord {
  status: string;
  result: { callbackId?: string } | null;
  callback: { url: string; status: string; attempts: number; result: { status?: number; error?: { code: string; message: string } } | null } | null;
}

describe('X-Callback-Url goes to public addresses only, unless the operator allows more', async () => {
  const strict = await startPlatform({ callbackLookup: testLookup });
  const open = await startPlatform({ callbackAllow: ['127.0.0.1/32'], callbackLookup: testLookup });
  await strict.deploySource('done', DONE);
  await open.deploySource('done', DONE);
  const sink = await receiver();
  after(() => sink.close());
  const record = async (t: typeof strict, id: string) => {
    const res = await t.admin('GET', `/v1/invocations/${id}`);
    assert.equal(res.status, 200);
    return ((await res.json()) as { invocation: InvocationRecord }).invocation;
  };
  const withCallback = (t: typeof strict, id: string) =>
    eventually(
      async () => {
        const r = await record(t, id);
        return r.callback && r.callback.status !== 'queued' && r.callback.status !== 'running' ? r : undefined;
      },
      10_000,
      `the callback of ${id}`,
    );

  test('with 127.0.0.1/32 allowed, the result arrives at a listener on 127.0.0.1, by address and by name', async () => {
    for (const host of ['127.0.0.1', 'rebind.test', 'dual.test']) {
      const before = sink.received.length;
      const res = await open.gw('/async/done/x', { method: 'POST', body: 'hi', headers: { 'x-callback-url': `http://${host}:${sink.port}/cb/${host}` } });
      assert.equal(res.status, 202, await res.text());
      const id = res.headers.get('x-call-id') ?? '';
      const got = await eventually(() => sink.received.find((r) => r.url === `/cb/${host}`), 10_000, `the callback via ${host}`);
      assert.equal(sink.received.length, before + 1);
      assert.equal(got.body, 'done');
      assert.equal(got.headers['x-call-id'], id);
      assert.equal(got.headers['x-made-by'], 'fn');
      const r = await withCallback(open, id);
      assert.equal(r.callback?.status, 'succeeded');
      assert.equal(r.callback?.result?.status, 200);
    }
  });

  test('without it, loopback, link-local, private and reserved targets are refused with 400 before anything is queued or sent', async () => {
    const before = sink.connections();
    const targets = [
      `http://127.0.0.1:${sink.port}/`,
      `http://127.1.2.3:${sink.port}/`,
      `http://localhost:${sink.port}/`,
      `http://LOCALHOST.:${sink.port}/`,
      `http://api.localhost:${sink.port}/`,
      `http://[::1]:${sink.port}/`,
      `http://[::ffff:127.0.0.1]:${sink.port}/`,
      `http://0x7f.1:${sink.port}/`,
      `http://2130706433:${sink.port}/`,
      `http://0.0.0.0:${sink.port}/`,
      'http://169.254.169.254/latest/meta-data/',
      'http://[fe80::1]/',
      'http://10.1.2.3/',
      'http://172.20.0.1/',
      'https://192.168.1.1/',
      'http://100.64.0.1/',
      'http://[fd00::1]/',
      'http://224.0.0.1/',
      'http://255.255.255.255/',
      'http://[64:ff9b::a00:1]/',
    ];
    for (const url of targets) {
      const res = await strict.gw('/async/done', { method: 'POST', body: 'x', headers: { 'x-callback-url': url } });
      const body = (await res.json()) as { error: { code: string; message: string; hint: string } };
      assert.equal(res.status, 400, `${url}: ${JSON.stringify(body)}`);
      assert.equal(body.error.code, 'NIMBUS_CALLBACK_REFUSED', url);
      assert.match(body.error.hint, /--callback-allow/);
      assert.equal(res.headers.get('x-call-id'), null, 'nothing was queued');
    }
    // OpenFaaS's route refuses the same way, in its plain-text form.
    const faas = await strict.gw('/async-function/done', { method: 'POST', headers: { 'x-callback-url': `http://localhost:${sink.port}/` } });
    assert.equal(faas.status, 400);
    assert.match(await faas.text(), /not a public address \(loopback/);
    assert.equal(sink.connections(), before, 'the listener saw no connection');
  });

  test('a name that resolves to a refused address is accepted, then refused at connect: recorded as a failed callback, never sent', async () => {
    const before = sink.connections();
    const res = await strict.gw('/async/done', { method: 'POST', headers: { 'x-callback-url': `http://rebind.test:${sink.port}/steal` } });
    assert.equal(res.status, 202);
    const id = res.headers.get('x-call-id') ?? '';
    const r = await withCallback(strict, id);
    assert.equal(r.status, 'succeeded', 'the invocation itself ran');
    assert.equal(r.callback?.status, 'failed');
    assert.equal(r.callback?.attempts, 1, 'a refusal is final: no retries');
    assert.equal(r.callback?.result?.error?.code, 'NIMBUS_CALLBACK_REFUSED');
    assert.match(r.callback?.result?.error?.message ?? '', /rebind\.test.*resolves to 127\.0\.0\.1: loopback, 127\.0\.0\.0\/8/);
    assert.equal(sink.connections(), before, 'the listener saw no connection');

    // The CLI shows it too.
    const cli = spawn(process.execPath, [CLI, 'invocation', id, '--url', strict.platform.adminUrl, '--token', strict.platform.token], { env: cleanEnv() });
    let out = '';
    cli.stdout.on('data', (d) => (out += d));
    const code = await new Promise((r) => cli.on('close', r));
    assert.equal(code, 0);
    assert.match(out, /callback {3}failed \(attempt 1\): .*not a public address/);
  });

  test('the allow-list is validated when the platform starts, every bad entry named', async () => {
    await assert.rejects(
      Platform.start({ dataDir: tempDir(), host: '127.0.0.1', port: 0, adminPort: 0, callbackAllow: ['10.0.0.0/33', 'intranet'] }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'NIMBUS_INVALID_ARGUMENT');
        assert.match(err.message, /"10\.0\.0\.0\/33".*0 to 32.*"intranet" is not an IP address or CIDR/);
        return true;
      },
    );
  });
});

test('CallbackPolicy: what is refused, what an allow-list lets through', () => {
  const none = new CallbackPolicy();
  for (const address of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808'])
    assert.equal(none.refusal(address), undefined, `${address} is public`);
  const expected: [string, RegExp][] = [
    ['127.0.0.1', /loopback/],
    ['::1', /loopback/],
    ['::ffff:7f00:1', /loopback/],
    ['169.254.169.254', /link-local/],
    ['fe80::abcd', /link-local/],
    ['10.9.8.7', /private/],
    ['172.31.255.255', /private/],
    ['192.168.0.1', /private/],
    ['fd12::1', /unique local/],
    ['100.127.0.1', /CGNAT/],
    ['0.1.2.3', /unspecified/],
    ['::', /unspecified/],
    ['239.1.1.1', /multicast/],
    ['ff02::1', /multicast/],
    ['250.0.0.1', /reserved/],
    ['198.18.0.1', /benchmarking/],
    ['64:ff9b::a00:1', /private/],
  ];
  for (const [address, why] of expected) assert.match(none.refusal(address) ?? 'allowed', why, address);
  const some = new CallbackPolicy(['127.0.0.1/32', '10.1.0.0/16', 'fd00::/8']);
  assert.equal(some.refusal('127.0.0.1'), undefined);
  assert.equal(some.refusal('::ffff:127.0.0.1'), undefined);
  assert.match(some.refusal('127.0.0.2') ?? '', /loopback/);
  assert.equal(some.refusal('10.1.200.3'), undefined);
  assert.match(some.refusal('10.2.0.1') ?? '', /private/);
  assert.equal(some.refusal('fd00::5'), undefined);
  assert.deepEqual(parseCidr('192.168.1.7'), { address: '192.168.1.7', prefix: 32, family: 'ipv4' });
  assert.match(String(parseCidr('::1/129')), /0 to 128/);
  assert.match(String(parseCidr('10.0.0.0/8/1')), /not an IP address or CIDR/);
});

testNoLeakedChildren();
