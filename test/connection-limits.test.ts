import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { LAMBDA_UNVERIFIED_BODY_BUDGET_BYTES } from '../src/config/defaults.js';
import { resolveEdge } from '../src/config/edge.js';
import type { ConnectionStats } from '../src/shared/connection-limits.js';
import { CLI, cleanEnv, eventually, startPlatform, tempDir, testNoLeakedChildren } from './helpers.js';
import { exchange, headerOf, RawConnection } from './raw-http.js';

/**
 * Idle connections held open, as a client flooding the platform would. Each is a real
 * socket from the given local address: Linux routes all of 127.0.0.0/8 to loopback,
 * so 127.0.0.2, .3 ... stand for other clients. Resolves once the server has counted
 * them all as open (a refused one would never count).
 */
async function hold(port: number, count: number, stats: ConnectionStats, localAddress = '127.0.0.1'): Promise<RawConnection[]> {
  const before = stats.open();
  const held: RawConnection[] = [];
  for (let i = 0; i < count; i++) held.push(await RawConnection.open(port, { localAddress }));
  after(() => {
    for (const c of held) c.socket.destroy();
  });
  await eventually(() => stats.open() === before + count, 5_000, `the server to accept ${count} connections from ${localAddress}`);
  return held;
}

describe('open connections are capped per client and in total, with separate budgets for the gateway and the admin API', async () => {
  const PER_CLIENT = 4;
  const TOTAL = 10;
  const t = await startPlatform({ connections: { gateway: { total: TOTAL, perClient: PER_CLIENT }, admin: { total: 6, perClient: 3 } } });
  await t.deploySource('hello', 'export default { fetch: () => new Response("hello") };');
  const gatewayPort = Number(new URL(t.platform.gatewayUrl).port);
  const adminPort = Number(new URL(t.platform.adminUrl).port);
  const get = (path: string, host: string) => `GET ${path} HTTP/1.1\nHost: ${host}\n\n`;
  const gw = (localAddress: string) => exchange(gatewayPort, get('/fn/hello', new URL(t.platform.gatewayUrl).host), { localAddress });
  const refused = (r: { status: number; text: string; closedByServer: boolean }, what: string) => {
    assert.equal(r.status, 503, `${what}: ${r.text}`);
    assert.equal(headerOf(r.text, 'x-nimbus-error-code'), 'NIMBUS_TOO_MANY_CONNECTIONS', what);
    assert.equal(headerOf(r.text, 'retry-after'), '1', what);
    assert.ok(r.closedByServer, `${what}: closed at once`);
  };

  test('one client holding its cap of idle connections is refused another; other clients and the admin API still answer', async () => {
    const idle = await hold(gatewayPort, PER_CLIENT, t.platform.connections.gateway);
    refused(await gw('127.0.0.1'), 'a further connection from the same client');
    const other = await gw('127.0.0.2');
    assert.equal(other.status, 200, other.text);
    assert.match(other.text, /hello$/);
    const health = await t.admin('GET', '/healthz');
    assert.equal(health.status, 200);
    const info = await t.admin('GET', '/v1/info');
    assert.equal(info.status, 200);
    // The client's own connections still work: the cap refuses new ones, it does not cut the old.
    idle[0].send(get('/fn/hello', new URL(t.platform.gatewayUrl).host));
    assert.equal((await idle[0].result()).status, 200);
    for (const c of idle) c.socket.destroy();
    // Once the platform has seen them close, the client may connect again.
    await eventually(() => t.platform.connections.gateway.open() === 0, 5_000, 'the closed connections to be let go');
    assert.equal((await gw('127.0.0.1')).status, 200);
  });

  test('past the total, every client is refused, and the admin API still answers', async () => {
    const stats = t.platform.connections.gateway;
    await eventually(() => stats.open() === 0, 5_000, 'the earlier connections to be let go');
    await hold(gatewayPort, PER_CLIENT, stats, '127.0.0.3');
    await hold(gatewayPort, PER_CLIENT, stats, '127.0.0.4');
    await hold(gatewayPort, TOTAL - 2 * PER_CLIENT, stats, '127.0.0.5');
    assert.equal(stats.clients(), 3);
    const refusedBefore = stats.refused();
    const newcomer = await gw('127.0.0.6');
    refused(newcomer, 'a new client past the total');
    assert.match(newcomer.text, /already has 10 open connections/);
    assert.equal(stats.refused(), refusedBefore + 1);
    assert.equal((await t.admin('GET', '/v1/info')).status, 200);
  });

  test("the admin API's own cap refuses a flood of it while the gateway answers", async () => {
    await hold(adminPort, 3, t.platform.connections.admin, '127.0.0.7');
    const r = await exchange(adminPort, get('/healthz', new URL(t.platform.adminUrl).host), { localAddress: '127.0.0.7' });
    refused(r, 'a fourth admin connection from one client');
    const other = await exchange(adminPort, get('/healthz', new URL(t.platform.adminUrl).host), { localAddress: '127.0.0.8' });
    assert.equal(other.status, 200, other.text);
  });
});

test('edge options: defaults, the open-file limit, and every bad value named at once', () => {
  const defaults = resolveEdge({}, 1_000_000);
  assert.deepEqual(defaults, {
    callbackAllow: [],
    adminHosts: [],
    gateway: { total: 10_000, perClient: 256 },
    admin: { total: 128, perClient: 64 },
    lambdaUnverifiedBodyBytes: LAMBDA_UNVERIFIED_BODY_BUDGET_BYTES,
  });
  assert.ok(Object.isFrozen(defaults) && Object.isFrozen(defaults.gateway));
  assert.equal(resolveEdge({}, 4_096).gateway.total, 2_048, 'at most half the open-file limit');
  assert.equal(resolveEdge({ connections: { gateway: { total: 8, perClient: 50 } } }).gateway.perClient, 8);
  assert.throws(
    () =>
      resolveEdge({
        connections: { gateway: { total: 0, perClient: 1.5 }, admin: { total: -1 } },
        callbackAllow: ['10.0.0.0/8', 'intranet'],
        adminHosts: ['evil example'],
        lambdaUnverifiedBodyBytes: 0,
      }),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'NIMBUS_INVALID_ARGUMENT');
      assert.match(err.message, /connections\.gateway\.total: must be at least 1 \(got 0\)/);
      assert.match(err.message, /connections\.gateway\.perClient: must be a whole number \(got 1\.5\)/);
      assert.match(err.message, /connections\.admin\.total: must be at least 1 \(got -1\)/);
      assert.match(err.message, /callbackAllow\.1: "intranet" is not an IP address or CIDR/);
      assert.match(err.message, /adminHosts\.0: "evil example" is not a host name/);
      assert.match(err.message, /lambdaUnverifiedBodyBytes: must be at least 1 \(got 0\)/);
      return true;
    },
  );
});

test('nimbus up refuses bad edge flags before it starts anything', async () => {
  const cases: [string[], RegExp][] = [
    [['--max-connections', '0'], /--max-connections must be a whole number from 1 to 1000000; got "0"/],
    [['--max-connections-per-client', 'many'], /--max-connections-per-client must be a whole number/],
    [['--callback-allow', '10.0.0.0/8', '--callback-allow', 'intranet'], /--callback-allow: "intranet" is not an IP address or CIDR/],
    [['--admin-host', 'admin.internal', '--admin-host', 'evil example'], /--admin-host: "evil example" is not a host name, IP address or name:port/],
  ];
  for (const [flags, message] of cases) {
    const dataDir = tempDir();
    const child = spawn(process.execPath, [CLI, 'up', '--port', '0', '--admin-port', '0', '--data-dir', dataDir, ...flags], { env: cleanEnv() });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((r) => child.on('close', r));
    assert.equal(code, 2, stderr);
    assert.match(stderr, /NIMBUS_INVALID_ARGUMENT/);
    assert.match(stderr, message);
    assert.equal(existsSync(join(dataDir, 'nimbus.pid')), false, 'nothing was locked');
  }
});

testNoLeakedChildren();
