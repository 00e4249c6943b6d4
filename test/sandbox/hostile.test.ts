/**
 * Issue 15: functions that attack the platform, other functions and the host, one per
 * runtime, each attack refused by the sandbox, while a bystander function and the
 * platform stay healthy. docs/security.md says which layer stops what.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DEFAULT_PIDS, SANDBOX_OPEN_FILES } from '../../src/config/defaults.js';
import { eventually, functionDir, startPlatform, testNoLeakedChildren } from '../helpers.js';
import { NODE_PROBE, PYTHON_PROBE } from './probes.js';
import { startTestHost } from './test-host.js';

type Results = Record<string, unknown>;

/** A listener on the host's loopback that counts connections: none may come from a function. */
async function loopbackListener(): Promise<{ port: number; connections: () => number; server: Server }> {
  let connections = 0;
  const server = createServer((c) => {
    connections++;
    c.end('HELLO\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  after(() => server.close());
  const address = server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, connections: () => connections, server };
}

/** Host processes whose command line holds `marker` (a daemon a function tried to leave behind). */
function processesWith(marker: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'latin1').includes(marker)) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

const LIMITS = 'memory: 256\ntmp: 8\npids: 32\ntimeout: 60s\n';

describe('a hostile function cannot reach the platform, other functions or the host', async () => {
  const t = await startPlatform({ warmPoolSize: 1 });
  const loopback = await loopbackListener();
  const privateHost = await startTestHost();
  await t.deploySource('bystander', 'export default { fetch: () => new Response("unaffected") };');
  await t.deploy(functionDir({ 'index.js': 'export default { fetch: () => new Response("victim") };' }, 'name: victim\nenv:\n  SECRET: victim-secret\n'));
  await t.deploy(functionDir({ 'probe.py': PYTHON_PROBE }, `name: py-hostile\nruntime: python\nhandler: probe.handler\n${LIMITS}`));
  await t.deploy(functionDir({ 'probe.py': PYTHON_PROBE }, `name: proc-hostile\nruntime: process\nstyle: stdio\ncommand: [python3, probe.py]\n${LIMITS}`));
  await t.deploy(functionDir({ 'index.js': NODE_PROBE }, 'name: node-hostile\n'));
  const victim = (await (await t.admin('GET', '/v1/functions/victim')).json()) as { function: { sha256: string } };
  const params = {
    tokenFile: t.platform.tokenFile,
    dbFile: join(t.platform.dataDir, 'nimbus.db'),
    dataDir: t.platform.dataDir,
    otherBundleFile: join(t.platform.dataDir, 'bundles', victim.function.sha256, 'index.mjs'),
    platformPid: process.pid,
    loopbackPort: loopback.port,
    privateHost: privateHost.address,
    privatePort: privateHost.port,
  };
  const probe = async (fn: string, probes: string[], extra: Record<string, unknown> = {}): Promise<Results> => {
    const ownFile = fn === 'node-hostile' ? '/var/task/index.mjs' : '/var/task/probe.py';
    const res = await t.gw(`/fn/${fn}`, { method: 'POST', body: JSON.stringify({ probes, params: { ...params, ownFile, ...extra } }) });
    const text = await res.text();
    assert.equal(res.status, 200, `${fn}: ${text}`);
    return JSON.parse(text) as Results;
  };
  const healthy = async () => {
    assert.equal(await (await t.gw('/fn/bystander')).text(), 'unaffected');
    assert.equal((await t.admin('GET', '/healthz')).status, 200);
  };

  for (const fn of ['py-hostile', 'proc-hostile']) {
    test(`${fn}: its own bundle and /tmp, nothing of the platform's files or other functions'`, async () => {
      const r = await probe(fn, [
        'own-bundle',
        'write-tmp',
        'read-token',
        'read-db',
        'read-other-bundle',
        'list-data-dir',
        'read-host-home',
        'write-own-bundle',
        'write-etc',
        'write-usr',
        'passwd',
      ]);
      // The controls: the probe runs, and can do what a function may.
      assert.equal(r['own-bundle'], 'ALLOWED');
      assert.equal(r['write-tmp'], 'ALLOWED');
      for (const k of ['read-token', 'read-db', 'read-other-bundle', 'list-data-dir', 'read-host-home']) assert.equal(r[k], 'refused: ENOENT', k);
      for (const k of ['write-own-bundle', 'write-etc', 'write-usr']) assert.match(String(r[k]), /^refused: (EROFS|EACCES)$/, k);
      const passwd = String(r.passwd);
      assert.match(passwd, /^function:x:\d+:/m);
      assert.equal(passwd.trim().split('\n').length, 3, 'only root, the function and nobody');
      await healthy();
    });

    test(`${fn}: its own unprivileged user, no capabilities, the seccomp filter, its own PID namespace`, async () => {
      const r = await probe(fn, ['status', 'visible-pids', 'kill-platform', 'unshare-userns', 'keyctl', 'ptrace', 'bpf', 'mount']);
      const status = r.status as Record<string, string>;
      assert.ok(Number(status.Uid) >= 1_000 && Number(status.Uid) !== 65_534, `uid ${status.Uid}`);
      assert.equal(status.CapEff, '0000000000000000');
      assert.equal(status.CapBnd, '0000000000000000');
      assert.equal(status.NoNewPrivs, '1');
      assert.equal(status.Seccomp, '2', 'a seccomp filter is loaded');
      const pids = r['visible-pids'] as number[];
      assert.ok(pids.includes(1) && pids.length < 10 && !pids.includes(process.pid), `sees only its own processes: ${pids}`);
      assert.equal(r['kill-platform'], 'refused: ESRCH');
      // A new user namespace would be allowed to an unprivileged user without the filter; so would keyctl.
      for (const k of ['unshare-userns', 'keyctl', 'bpf', 'mount']) assert.equal(r[k], 'refused: EPERM', k);
      assert.match(String(r.ptrace), /^refused: (EPERM|ESRCH)$/);
      await healthy();
    });

    test(`${fn}: no connection to the host's loopback or a private address`, async () => {
      const before = await privateHost.connections();
      const r = await probe(fn, ['connect-host-loopback', 'connect-private']);
      // Its loopback is its own: nothing listens there.
      assert.equal(r['connect-host-loopback'], 'refused: ECONNREFUSED');
      assert.equal(r['connect-private'], 'refused: EACCES', 'a prohibit route, before any packet leaves');
      assert.equal(loopback.connections(), 0);
      assert.equal(await privateHost.connections(), before);
      await healthy();
    });

    test(`${fn}: limits hold for its whole process tree`, async () => {
      const r = await probe(fn, ['fork-bomb', 'open-files', 'fill-tmp']);
      const count = (v: unknown) => Number(/after (\d+)/.exec(String(v))?.[1]);
      assert.match(String(r['fork-bomb']), /^refused: EAGAIN after \d+$/);
      assert.ok(count(r['fork-bomb']) < 32, `forks stop below pids: 32 (${r['fork-bomb']})`);
      assert.match(String(r['open-files']), /^refused: EMFILE after \d+$/);
      assert.ok(count(r['open-files']) <= SANDBOX_OPEN_FILES);
      assert.match(String(r['fill-tmp']), /^refused: ENOSPC after \d+ MB$/);
      assert.ok(count(r['fill-tmp']) <= 8, `/tmp holds at most tmp: 8 MB (${r['fill-tmp']})`);
      // 1.6 GB in a child process, with memory: 256: the kernel kills the child (its cgroup is
      // full), or the platform's watchdog stops the whole instance first (its tree's memory is).
      const res = await t.gw(`/fn/${fn}`, { method: 'POST', body: JSON.stringify({ probes: ['hog-memory'], params: { hogMB: 1600 } }) });
      const body = await res.text();
      if (res.status === 200) assert.equal((JSON.parse(body) as Results)['hog-memory'], 'refused: exit -9');
      else {
        assert.equal(res.status, 502, body);
        assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, 'NIMBUS_MEMORY_LIMIT');
      }
      await healthy();
    });
  }

  test('a daemon started with setsid and a double fork ends with its instance', async () => {
    const marker = `nimbus-daemon-${process.pid}-${Date.now()}`;
    const r = await probe('proc-hostile', ['daemon'], { marker });
    assert.equal(r.daemon, 'started');
    await eventually(() => processesWith(marker).length > 0 || undefined, 5_000, 'the daemon to run');
    await t.admin('DELETE', '/v1/functions/proc-hostile');
    await eventually(() => processesWith(marker).length === 0 || undefined, 10_000, 'the daemon to end with the instance');
    await healthy();
  });

  test("each instance's /tmp is its own", async () => {
    const a = await probe('py-hostile', ['tmp-marker'], { marker: 'from-py' });
    assert.equal(a['tmp-marker'], '');
    await t.deploy(functionDir({ 'probe.py': PYTHON_PROBE }, `name: py-other\nruntime: python\nhandler: probe.handler\n`));
    const b = await probe('py-other', ['tmp-marker'], { marker: 'from-other' });
    assert.equal(b['tmp-marker'], '', "another function does not see the first one's /tmp");
    const again = await probe('py-hostile', ['tmp-marker'], { marker: 'again' });
    assert.equal(again['tmp-marker'], 'from-py', 'the instance keeps its own /tmp between requests');
  });

  test('node: the same walls, with Node’s permission model in front', async () => {
    const r = await probe('node-hostile', [
      'own-bundle',
      'write-tmp',
      'read-token',
      'read-db',
      'read-other-bundle',
      'write-own-bundle',
      'kill-platform',
      'spawn',
      'connect-host-loopback',
      'connect-private',
      'pid',
      'uid',
    ]);
    assert.equal(r['own-bundle'], 'ALLOWED');
    assert.equal(r['write-tmp'], 'ALLOWED');
    for (const k of ['read-token', 'read-db', 'read-other-bundle', 'write-own-bundle', 'spawn']) assert.equal(r[k], 'refused: ERR_ACCESS_DENIED', k);
    assert.equal(r['kill-platform'], 'refused: ESRCH');
    assert.equal(r['connect-host-loopback'], 'refused: ECONNREFUSED');
    assert.equal(r['connect-private'], 'refused: EACCES');
    assert.equal(r.pid, 2, "the second process of its own namespace, after bubblewrap's init");
    assert.ok(Number(r.uid) > 0);
    assert.equal(loopback.connections(), 0);
    await healthy();
  });

  test('log output is capped per request, with a marker, keeping every line before it', async () => {
    await t.deploySource(
      'chatty',
      `export default { fetch(request) {
        const line = 'x'.repeat(1000);
        for (let i = 0; i < 3000; i++) console.log(i + ' ' + line);
        return new Response('spoke');
      } };`,
    );
    const res = await t.gw('/fn/chatty');
    assert.equal(await res.text(), 'spoke');
    const requestId = res.headers.get('x-nimbus-request-id') ?? '';
    const lines = await eventually(async () => {
      const l = await t.logs('chatty', { limit: '10000', requestId });
      return l.some((x) => x.line.startsWith('[nimbus]')) ? l : undefined;
    });
    const kept = lines.filter((l) => /^\d+ x+$/.test(l.line));
    assert.deepEqual(
      kept.map((l) => Number(l.line.split(' ')[0])),
      Array.from({ length: kept.length }, (_, i) => i),
      'every line up to the cut, in order',
    );
    assert.ok(kept.length >= 1000 && kept.length < 1100, `about 1 MB of lines kept (${kept.length})`);
    assert.match(lines[lines.length - 1].line, /^\[nimbus\] this request wrote more than 1048576 bytes of logs/);
    await healthy();
  });

  test("a program cannot pass its lines off as other requests' to escape the cap", async () => {
    // A long-running program (runtime: process) writes raw to stdout: it forges request marks.
    const server = `import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        for i in range(3000):
            sys.stdout.write("\\x1eforged-%d\\x1f%s\\n" % (i, "x" * 1000))
        sys.stdout.flush()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"forged")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`;
    await t.deploy(functionDir({ 'server.py': server }, 'name: forger\nruntime: process\ncommand: [python3, server.py]\n'));
    assert.equal(await (await t.gw('/fn/forger')).text(), 'forged');
    const lines = await eventually(async () => {
      const l = await t.logs('forger', { limit: '10000' });
      return l.some((x) => x.line.startsWith('[nimbus]')) ? l : undefined;
    });
    assert.deepEqual(
      lines.filter((l) => l.requestId !== null),
      [],
      'a mark that names no request of the instance is not taken',
    );
    assert.ok(lines.length < 1_100, `the lines fell under the instance's own budget (${lines.length} stored)`);
    assert.match(lines[lines.length - 1].line, /^\[nimbus\] this instance wrote more than/);
    await healthy();
  });

  test('after every attack the platform and the bystander are unharmed', async () => {
    await healthy();
    assert.equal((await t.gw('/fn/victim')).status, 200);
    assert.ok(DEFAULT_PIDS >= 32);
  });
});

testNoLeakedChildren();
