/**
 * Issue 15: the sandbox also holds when the platform runs as an ordinary user, with
 * unprivileged user namespaces instead of root: the instance's user is mapped inside a
 * user namespace of its own, and what is weaker there (no cgroups; outbound functions
 * share the host's network on a platform bound to loopback) is said in GET /v1/info.
 * The test runs `nimbus up` as an unprivileged uid of its own (it needs root to do so).
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildFunction } from '../../src/build/bundle.js';
import { functionDir, REPO_ROOT, tempDir, testNoLeakedChildren } from '../helpers.js';
import { startUp } from '../sandbox-helpers.js';
import { PYTHON_PROBE } from './probes.js';

/** A uid no account on the machine has. */
const USER = 4_242;
const root = process.getuid?.() === 0;

/** The first folder above the checkout that another user cannot pass through, if any. */
function unreachableAncestor(): string | undefined {
  for (let dir = REPO_ROOT; dir !== '/'; dir = dirname(dir)) if ((statSync(dir).mode & 0o001) === 0) return dir;
  return undefined;
}

describe('as an ordinary user', { skip: !root && process.env.CI !== 'true' ? 'needs root to start the platform as another user' : false }, async () => {
  const blocked = unreachableAncestor();
  assert.equal(blocked, undefined, `${blocked} is closed to other users, so the platform cannot run as one: chmod o+x it (.ci/run does)`);
  const dir = tempDir('nimbus-rootless-');
  chownSync(dir, USER, USER);
  chmodSync(dir, 0o755);
  const dataDir = join(dir, 'data');
  const up = await startUp(dataDir, [], { uid: USER });
  const token = readFileSync(up.info.tokenFile, 'utf8').trim();
  const admin = (method: string, path: string, body?: Uint8Array, type = 'application/zip') =>
    fetch(`${up.info.adminUrl}${path}`, { method, body, headers: { authorization: `Bearer ${token}`, 'content-type': type } });
  const deploy = async (name: string, manifest: string) => {
    const { zip } = await buildFunction(functionDir({ 'probe.py': PYTHON_PROBE }, `name: ${name}\nruntime: python\nhandler: probe.handler\n${manifest}`));
    const res = await admin('PUT', `/v1/functions/${name}`, zip);
    assert.ok(res.status === 200 || res.status === 201, await res.text());
  };
  const probe = async (fn: string, probes: string[], params: Record<string, unknown> = {}) => {
    const res = await fetch(`${up.info.gatewayUrl}/fn/${fn}`, { method: 'POST', body: JSON.stringify({ probes, params }) });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return JSON.parse(text) as Record<string, unknown>;
  };
  let connections = 0;
  const listener = createServer((c) => {
    connections++;
    c.end('HELLO\n');
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  after(() => listener.close());
  const loopbackPort = (listener.address() as { port: number }).port;
  after(() => up.stop());

  test('GET /v1/info says what holds and what is weaker here', async () => {
    const info = (await (await admin('GET', '/v1/info')).json()) as { sandbox: Record<string, unknown> };
    assert.equal(info.sandbox.kind, 'bubblewrap');
    assert.equal(info.sandbox.users, 'user-namespace');
    assert.equal(info.sandbox.limits, 'rlimit');
    assert.equal(info.sandbox.network, 'host');
    assert.match(String(info.sandbox.reason), /share the host's network/);
  });

  test("its own user inside a user namespace, no capabilities, the seccomp filter; no view of the platform's files", async () => {
    await deploy('probe', 'network: none\n');
    const r = await probe('probe', ['own-bundle', 'read-token', 'read-db', 'status', 'visible-pids', 'unshare-userns', 'keyctl'], {
      ownFile: '/var/task/probe.py',
      tokenFile: up.info.tokenFile,
      dbFile: join(dataDir, 'nimbus.db'),
    });
    assert.equal(r['own-bundle'], 'ALLOWED');
    assert.equal(r['read-token'], 'refused: ENOENT');
    assert.equal(r['read-db'], 'refused: ENOENT');
    const status = r.status as Record<string, string>;
    assert.equal(status.Uid, '1000');
    assert.equal(status.CapEff, '0000000000000000');
    assert.equal(status.NoNewPrivs, '1');
    assert.equal(status.Seccomp, '2');
    assert.ok((r['visible-pids'] as number[]).length < 10);
    assert.equal(r['unshare-userns'], 'refused: EPERM');
    assert.equal(r.keyctl, 'refused: EPERM');
  });

  test("network: none has its own namespace; an outbound function shares the host's, as /v1/info says", async () => {
    const none = await probe('probe', ['connect-host-loopback'], { loopbackPort });
    assert.equal(none['connect-host-loopback'], 'refused: ECONNREFUSED');
    assert.equal(connections, 0);
    await deploy('outbound', '');
    const shared = await probe('outbound', ['connect-host-loopback'], { loopbackPort });
    assert.equal(shared['connect-host-loopback'], 'ALLOWED: HELLO', 'the weaker isolation reported above is real');
    assert.equal(connections, 1);
  });

  test('stops cleanly', async () => {
    assert.equal(await up.stop(), 0);
  });
});

testNoLeakedChildren();
