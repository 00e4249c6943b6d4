// One run, every peer: warm throughput with wrk, cold start from zero instances, and
// process start to first 200. Ratios matter; absolute numbers drift on a shared machine.
//   cd bench && npm install && npm run bench        (DURATION=10 CONNECTIONS=50 SAMPLES=20)
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const NIMBUS = join(HERE, '..', 'bin', 'nimbus.js');
const WORKERD = join(HERE, 'node_modules', '.bin', 'workerd');
const DURATION_S = Number(process.env.DURATION ?? 10);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50);
const SAMPLES = Number(process.env.SAMPLES ?? 20);
const START_SAMPLES = Number(process.env.START_SAMPLES ?? 5);
const WORK = mkdtempSync(join(tmpdir(), 'nimbus-bench-'));
// NODE_EXTRA_CA_CERTS makes every Node start ~4x slower here; no peer gets it.
const ENV = { ...process.env };
delete ENV.NODE_EXTRA_CA_CERTS;
delete ENV.NODE_OPTIONS;

const children = new Set();
function start(command, args, extraEnv = {}) {
  const child = spawn(command, args, { env: { ...ENV, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
function cleanup() {
  for (const child of children) child.kill('SIGKILL');
  rmSync(WORK, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitFor200(url, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`no 200 from ${url} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function toMs(value) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(value);
  return m ? Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]] : Number.NaN;
}

function wrk(url, extra = []) {
  const out = execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${DURATION_S}s`, '--latency', ...extra, url], { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const p50 = toMs(/\s50%\s+(\S+)/.exec(out)[1]);
  const p99 = toMs(/\s99%\s+(\S+)/.exec(out)[1]);
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? '0';
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  return { rps, p50, p99, errors: Number(errors), requests };
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

async function bareNode(port) {
  const child = start(process.execPath, [join(HERE, 'servers', 'bare-node.mjs')], { PORT: String(port) });
  await waitFor200(`http://127.0.0.1:${port}/`);
  return { child, url: `http://127.0.0.1:${port}/` };
}

async function workerd(port) {
  const dir = join(WORK, `workerd-${port}`);
  mkdirSync(dir, { recursive: true });
  cpSync(join(HERE, 'servers', 'hello-worker.js'), join(dir, 'hello-worker.js'));
  writeFileSync(
    join(dir, 'config.capnp'),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .hello) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const hello :Workerd.Worker = (
  modules = [ (name = "worker", esModule = embed "hello-worker.js") ],
  compatibilityDate = "2024-09-23",
);
`,
  );
  const child = start(WORKERD, ['serve', join(dir, 'config.capnp')]);
  await waitFor200(`http://127.0.0.1:${port}/`);
  return { child, url: `http://127.0.0.1:${port}/` };
}

/** `nimbus up` with the bench function deployed; resolves once it answers 200. */
async function nimbus() {
  const dataDir = mkdtempSync(join(WORK, 'nimbus-'));
  const child = start(process.execPath, [NIMBUS, 'up', '--port', '0', '--admin-port', '0', '--data-dir', dataDir, '--json']);
  const info = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]));
    });
    child.once('exit', (code) => reject(new Error(`nimbus up exited with ${code}`)));
  });
  const token = readFileSync(info.tokenFile, 'utf8').trim();
  const deploy = (fn, ...extra) =>
    execFileSync(process.execPath, [NIMBUS, 'deploy', join(HERE, 'functions', fn), '--url', info.adminUrl, '--token', token, '--json', ...extra], {
      env: ENV,
    });
  deploy('hello');
  const url = `${info.gatewayUrl}/fn/bench-hello`;
  await waitFor200(url);
  return { child, url, deploy, gatewayUrl: info.gatewayUrl, adminUrl: info.adminUrl, token };
}

async function startToFirst200(launch) {
  const times = [];
  for (let i = 0; i < START_SAMPLES; i++) {
    const port = await freePort();
    const t0 = performance.now();
    const { child } = await launch(port);
    times.push(performance.now() - t0);
    await stop(child);
  }
  return times.sort((a, b) => a - b);
}

/**
 * Each redeploy with a new env is a new version at zero instances (the deploy's load
 * check stops its instance), so the next request is a cold start.
 */
async function coldStarts(n, fn, url) {
  const times = [];
  for (let i = 0; i < SAMPLES; i++) {
    n.deploy(fn, '--env', `RUN=${i}`);
    // Let the warm pool refill after the deploy's check, as it would between real deploys.
    await new Promise((r) => setTimeout(r, 400));
    const t0 = performance.now();
    const res = await fetch(url);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`cold start ${i}: HTTP ${res.status}`);
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b);
}

/**
 * Async events: wrk POSTs to /async/bench-hello (each 202 = committed to disk) while
 * the dispatcher delivers them; then one marker event is sent and awaited. Accepted/s is
 * wrk's rate; delivered/s counts every accepted event over the time until the marker
 * (queued after all of them) has run.
 */
async function asyncEvents(n) {
  const t0 = performance.now();
  const r = wrk(`${n.gatewayUrl}/async/bench-hello`, ['-s', join(HERE, 'post.lua')]);
  const res = await fetch(`${n.gatewayUrl}/async/bench-hello`, { method: 'POST', body: 'marker' });
  const { id } = await res.json();
  for (;;) {
    const rec = await (await fetch(`${n.adminUrl}/v1/invocations/${id}`, { headers: { authorization: `Bearer ${n.token}` } })).json();
    if (rec.invocation.status === 'succeeded') break;
    if (rec.invocation.status !== 'queued' && rec.invocation.status !== 'running') throw new Error(`marker ended ${rec.invocation.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (performance.now() - t0) / 1000;
  const accepted = r.requests - r.errors;
  return { ...r, accepted, delivered: (accepted + 1) / seconds };
}

const f1 = (x) => x.toFixed(1);
const f0 = (x) => Math.round(x).toLocaleString('en-US');

async function main() {
  const rows = [];
  for (const [name, launch] of [
    ['bare node:http', async () => bareNode(await freePort())],
    ['workerd', async () => workerd(await freePort())],
    ['nimbus (gateway → process instance)', nimbus],
  ]) {
    const peer = await launch();
    wrk(peer.url); // warm-up run, discarded
    const r = wrk(peer.url);
    rows.push({ name, ...r });
    if (name.startsWith('nimbus')) {
      rows.cold = await coldStarts(peer, 'hello', peer.url);
      rows.coldPy = await coldStarts(peer, 'hello-py', `${peer.gatewayUrl}/fn/bench-hello-py`);
      rows.async = await asyncEvents(peer);
      console.error(`async: ${f0(rows.async.rps)} accepted/s, ${f0(rows.async.delivered)} delivered/s`);
    }
    await stop(peer.child);
    console.error(`${name}: ${f0(r.rps)} req/s, p50 ${f1(r.p50)} ms, p99 ${f1(r.p99)} ms`);
  }
  const [bare, wd, nb] = rows;
  const starts = {
    'bare node:http': await startToFirst200(bareNode),
    workerd: await startToFirst200(workerd),
    'nimbus up + deploy': await startToFirst200(async () => nimbus()),
  };

  const lines = [
    `Run: ${new Date().toISOString()}, Node ${process.version}, wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s (after a discarded warm-up run), ${SAMPLES} cold-start samples.`,
    '',
    '| hello world, warm | req/s | p50 ms | p99 ms | non-2xx |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.name} | ${f0(r.rps)} | ${f1(r.p50)} | ${f1(r.p99)} | ${r.errors} |`),
    '',
    '| ratio | value |',
    '|---|---:|',
    `| nimbus / bare node:http, req/s | ${f1((100 * nb.rps) / bare.rps)}% |`,
    `| nimbus / workerd, req/s | ${(nb.rps / wd.rps).toFixed(2)}× |`,
    `| nimbus p99 / bare node:http p99 | ${(nb.p99 / bare.p99).toFixed(1)}× |`,
    '',
    '| async events (durable queue, `POST /async/bench-hello`) | per second | p50 ms | p99 ms | non-2xx |',
    '|---|---:|---:|---:|---:|',
    `| accepted (202 after the commit), while delivering | ${f0(rows.async.rps)} | ${f1(rows.async.p50)} | ${f1(rows.async.p99)} | ${rows.async.errors} |`,
    `| delivered end to end (${f0(rows.async.accepted)} events) | ${f0(rows.async.delivered)} | | | |`,
    '',
    '| from zero | p50 ms | p99 ms | min ms | max ms |',
    '|---|---:|---:|---:|---:|',
    ...[
      ['JavaScript', rows.cold],
      ['Python', rows.coldPy],
    ].map(
      ([lang, t]) =>
        `| nimbus: first response, ${lang} function at zero instances | ${f1(quantile(t, 0.5))} | ${f1(quantile(t, 0.99))} | ${f1(t[0])} | ${f1(t.at(-1))} |`,
    ),
    ...Object.entries(starts).map(
      ([k, t]) => `| ${k}: process start to first 200 | ${f1(quantile(t, 0.5))} | ${f1(quantile(t, 0.99))} | ${f1(t[0])} | ${f1(t.at(-1))} |`,
    ),
  ];
  const table = lines.join('\n');
  console.log(table);
  mkdirSync(join(HERE, 'results'), { recursive: true });
  writeFileSync(join(HERE, 'results', 'latest.md'), `${table}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
