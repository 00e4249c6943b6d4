import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { AdminHosts } from '../src/control/admin-hosts.js';
import { Platform } from '../src/platform.js';
import { CLI, cleanEnv, startPlatform, tempDir, testNoLeakedChildren } from './helpers.js';
import { exchange, headerOf } from './raw-http.js';

/** A request with exactly the Host header given (no HTTP client lets a test send a wrong one). */
function request(port: number, host: string | undefined, opts: { path?: string; token?: string; extra?: string; version?: string } = {}) {
  const lines = [`${opts.path?.startsWith('PUT') ? opts.path : `GET ${opts.path ?? '/v1/info'}`} HTTP/${opts.version ?? '1.1'}`];
  if (host !== undefined) lines.push(`Host: ${host}`);
  if (opts.token) lines.push(`Authorization: Bearer ${opts.token}`);
  if (opts.extra) lines.push(opts.extra);
  return exchange(port, `${lines.join('\n')}\n\n`);
}

describe('the admin API answers only to the host names it serves (DNS rebinding)', async () => {
  const t = await startPlatform();
  const port = Number(new URL(t.platform.adminUrl).port);
  const token = t.platform.token;

  test('a valid token with Host: evil.example is refused with 421, before the token is looked at', async () => {
    for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1.nip.io:${port}`, `127.0.0.1:${port + 1}`, `[::2]:${port}`]) {
      const r = await request(port, host, { token });
      assert.equal(r.status, 421, `${host}: ${r.text}`);
      assert.equal(headerOf(r.text, 'x-nimbus-error-code'), 'NIMBUS_HOST_NOT_ALLOWED', host);
      assert.match(r.text, /"hint":"the admin API answers only to its own address/);
    }
    const anonymous = await request(port, 'evil.example');
    assert.equal(anonymous.status, 421, 'the Host is checked before the token');
    const noHost = await request(port, undefined, { token, version: '1.0' });
    assert.equal(noHost.status, 421);
  });

  test('its own address, localhost, 127.0.0.1 and [::1] with its port are served', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
      const r = await request(port, host, { token });
      assert.equal(r.status, 200, `${host}: ${r.text}`);
    }
    // What every client of the printed URL sends: the test helpers' fetch, and the CLI.
    assert.equal((await t.admin('GET', '/v1/functions')).status, 200);
    for (const url of [t.platform.adminUrl, `http://localhost:${port}`]) {
      const cli = spawn(process.execPath, [CLI, 'ls', '--url', url, '--token', token], { env: cleanEnv() });
      let stderr = '';
      cli.stderr.on('data', (d) => (stderr += d));
      assert.equal(await new Promise((r) => cli.on('close', r)), 0, `nimbus ls --url ${url}: ${stderr}`);
    }
  });

  test('/healthz answers any Host', async () => {
    const r = await request(port, 'evil.example', { path: '/healthz' });
    assert.equal(r.status, 200, r.text);
  });

  test('an upload under a foreign Host is not invited, and its connection closed', async () => {
    const r = await request(port, 'evil.example', {
      path: 'PUT /v1/functions/x',
      token,
      extra: 'Content-Type: application/zip\nContent-Length: 10000000\nExpect: 100-continue',
    });
    assert.equal(r.status, 421, r.text);
    assert.equal(r.continued, false);
    assert.ok(r.closedByServer);
  });
});

describe('names the operator adds', async () => {
  const t = await startPlatform({ adminHosts: ['admin.internal', 'ops.example:9000', '[fd00::7]'] });
  const port = Number(new URL(t.platform.adminUrl).port);
  const token = t.platform.token;

  test('are served with the admin port, with no port (through a proxy), or with the port given', async () => {
    for (const host of [`admin.internal:${port}`, 'admin.internal', 'Admin.Internal.', 'ops.example:9000', `[fd00::7]:${port}`]) {
      assert.equal((await request(port, host, { token })).status, 200, host);
    }
    for (const host of [`ops.example:${port}`, 'ops.example', 'other.internal', `sub.admin.internal:${port}`]) {
      assert.equal((await request(port, host, { token })).status, 421, host);
    }
  });

  test('are validated when the platform starts', async () => {
    await assert.rejects(
      Platform.start({ dataDir: tempDir(), host: '127.0.0.1', port: 0, adminPort: 0, adminHosts: ['ok.example', 'not a host', 'x:99999'] }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'NIMBUS_INVALID_ARGUMENT');
        assert.match(err.message, /adminHosts\.1: "not a host" is not a host name.*adminHosts\.2: "x:99999"/);
        return true;
      },
    );
  });
});

test('AdminHosts: listening on every interface allows any IP literal with the port, never a name', () => {
  const all = new AdminHosts();
  all.bind('0.0.0.0', 8081);
  assert.equal(all.allows('192.0.2.10:8081'), true);
  assert.equal(all.allows('[2001:db8::1]:8081'), true);
  assert.equal(all.allows('192.0.2.10:8082'), false);
  assert.equal(all.allows('rebind.example:8081'), false);
  const one = new AdminHosts();
  one.bind('192.0.2.10', 80);
  assert.equal(one.allows('192.0.2.10'), true, 'no port is port 80');
  assert.equal(one.allows('192.0.2.11:80'), false);
  assert.equal(new AdminHosts().allows('127.0.0.1:8081'), false, 'nothing before the server listens');
});

testNoLeakedChildren();
