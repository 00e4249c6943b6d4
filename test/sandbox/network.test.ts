/**
 * Issue 15, network: outbound by default but never to the host or private ranges,
 * none on request, private ranges only when the manifest allow-lists them; and no port
 * of one instance (its Lambda Runtime API, its relay to the state API) reachable from
 * another. Every refusal is checked against a listener of the test's own.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, describe, test } from 'node:test';
import { functionDir, startPlatform, testNoLeakedChildren } from '../helpers.js';
import { PYTHON_PROBE } from './probes.js';
import { startTestHost } from './test-host.js';

/** Connects to host:port from inside the function; answers what it got, or the error code. */
const CONNECT = `
import net from 'node:net';
import os from 'node:os';
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.searchParams.has('interfaces')) return Response.json(Object.keys(os.networkInterfaces()));
    const result = await new Promise((resolve) => {
      const s = net.connect({ host: url.searchParams.get('host'), port: Number(url.searchParams.get('port')), timeout: 2000 });
      s.once('data', (d) => { resolve('ALLOWED: ' + String(d).trim()); s.destroy(); });
      s.once('error', (e) => resolve('refused: ' + e.code));
      s.once('timeout', () => { resolve('refused: timeout'); s.destroy(); });
    });
    return new Response(result);
  },
};`;

/** A Lambda Runtime API bootstrap that answers with the address of its own Runtime API. */
const BOOTSTRAP = `#!/usr/bin/env python3
import json, os, urllib.request
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
while True:
    with urllib.request.urlopen("http://%s/2018-06-01/runtime/invocation/next" % api) as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    body = json.dumps({"statusCode": 200, "body": api}).encode()
    urllib.request.urlopen(urllib.request.Request("http://%s/2018-06-01/runtime/invocation/%s/response" % (api, rid), data=body, method="POST")).read()
`;

/**
 * How an instance's network namespace routes an address, asked from the host (root):
 * `ip route get` sends no packet. A prohibited address answers "Permission denied".
 */
function routeTo(pid: number, address: string): string {
  try {
    return execFileSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', 'route', 'get', address], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (err) {
    return String((err as { stderr?: string }).stderr).trim();
  }
}

describe('network', async () => {
  const t = await startPlatform({ warmPoolSize: 1 });
  const privateHost = await startTestHost();
  await t.deploySource('outbound', CONNECT);
  await t.deploySource('allowed', CONNECT, `network:\n  allow: [${privateHost.address}/32]\n`);
  await t.deploySource('isolated', CONNECT, 'network: none\n');
  const connect = async (fn: string, host: string, port: number) => (await t.gw(`/fn/${fn}?host=${host}&port=${port}`)).text();
  const pidOf = async (fn: string) => {
    assert.equal((await t.gw(`/fn/${fn}?interfaces=1`)).status, 200);
    const instance = [...(t.platform.runtime.current(fn)?.instances ?? [])][0];
    assert.ok(instance?.pid, `${fn} has an instance`);
    return instance.pid;
  };

  test('a private range is refused before any packet leaves, unless the manifest allows it', async () => {
    const before = await privateHost.connections();
    assert.equal(await connect('outbound', privateHost.address, privateHost.port), 'refused: EACCES');
    assert.equal(await privateHost.connections(), before, 'the refused attempt never arrived');
    // The control: the same address, allow-listed, is reached through slirp4netns.
    assert.equal(await connect('allowed', privateHost.address, privateHost.port), 'ALLOWED: HELLO');
    assert.equal(await privateHost.connections(), before + 1);
  });

  test("the host's own addresses are refused, as its loopback is", async () => {
    const own = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal);
    assert.ok(own, 'the machine has an address besides loopback');
    let connections = 0;
    const server = createServer((c) => {
      connections++;
      c.end('HELLO\n');
    });
    await new Promise<void>((r) => server.listen(0, own.address, r));
    after(() => server.close());
    const { port } = server.address() as { port: number };
    assert.equal(await connect('outbound', own.address, port), 'refused: EACCES');
    assert.equal(await connect('allowed', own.address, port), 'refused: EACCES', 'allowing one range opens only that range');
    assert.equal(connections, 0);
  });

  test('link-local (the cloud metadata address) and private ranges are prohibited routes; the internet goes out through slirp4netns', async () => {
    const pid = await pidOf('outbound');
    for (const address of ['169.254.169.254', '10.1.2.3', '172.16.0.1', '192.168.1.1', '100.64.0.1']) {
      assert.match(routeTo(pid, address), /Permission denied/, `${address} is prohibited`);
    }
    // A public address (TEST-NET-3, routed nowhere): the route exists; no packet is sent.
    assert.match(routeTo(pid, '203.0.113.7'), /^203\.0\.113\.7 via 10\.0\.2\.2 dev tap0/);
    assert.match(routeTo(await pidOf('allowed'), privateHost.address), /via 10\.0\.2\.2 dev tap0/);
    assert.match(routeTo(await pidOf('allowed'), '10.1.2.3'), /Permission denied/, 'only the allowed range opens');
  });

  test('network: none leaves only the loopback device', async () => {
    assert.deepEqual(await (await t.gw('/fn/isolated?interfaces=1')).json(), ['lo']);
    assert.equal(await connect('isolated', privateHost.address, privateHost.port), 'refused: EACCES');
    assert.match(routeTo(await pidOf('isolated'), '203.0.113.7'), /Network is unreachable/, 'no route out at all');
  });

  test("one instance cannot reach another's Lambda Runtime API or state relay: each is inside its own namespace", async () => {
    await t.deploy(functionDir({ bootstrap: BOOTSTRAP }, 'name: custom-runtime\nruntime: process\nstyle: lambda-runtime\n'));
    const api = await (await t.gw('/fn/custom-runtime')).text();
    assert.match(api, /^127\.0\.0\.1:\d+$/, 'the bootstrap reaches its own Runtime API');
    await t.deploy(functionDir({ 'probe.py': PYTHON_PROBE }, 'name: prober\nruntime: python\nhandler: probe.handler\nbindings:\n  CACHE: { kv: cache }\n'));
    const port = Number(api.split(':')[1]);
    const res = await t.gw('/fn/prober', { method: 'POST', body: JSON.stringify({ probes: ['connect-other-instance', 'env'], params: { otherPort: port } }) });
    const r = (await res.json()) as Record<string, unknown>;
    assert.equal(r['connect-other-instance'], 'refused: ECONNREFUSED');
    // Its own state relay is there, on its own loopback.
    assert.match(String((r.env as Record<string, string>).NIMBUS_STATE_URL), /^http:\/\/127\.0\.0\.1:\d+$/);
  });
});

testNoLeakedChildren();
