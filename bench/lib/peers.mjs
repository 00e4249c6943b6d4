// The processes a run starts: bare node:http, workerd and `nimbus up`, with the
// helpers that drive them (wrk, deploys through the CLI and through the admin API).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONNECTIONS } from './knobs.mjs';
import { sleep } from './stats.mjs';
import { zipFolder } from './zip.mjs';

export const HERE = fileURLToPath(new URL('..', import.meta.url));
// NIMBUS_BIN benchmarks another build (e.g. a checkout of an older commit) with the same harness.
export const NIMBUS = process.env.NIMBUS_BIN || join(HERE, '..', 'bin', 'nimbus.js');
const WORKERD = join(HERE, 'node_modules', '.bin', 'workerd');
export const FUNCTIONS = join(HERE, 'functions');
const WORK = mkdtempSync(join(tmpdir(), 'nimbus-bench-'));
// NODE_EXTRA_CA_CERTS makes every Node start ~4x slower here; no peer gets it, nor the
// CLI runs, nor the load generator.
export const ENV = { ...process.env };
delete ENV.NODE_EXTRA_CA_CERTS;
delete ENV.NODE_OPTIONS;

const children = new Set();
export function start(command, args, extraEnv = {}) {
  const child = spawn(command, args, { env: { ...ENV, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  // Keep the pipes drained (a full pipe would stall the child) and the end of stderr for errors.
  child.stderrTail = '';
  child.stderr.on('data', (d) => {
    child.stderrTail = (child.stderrTail + d).slice(-4_000);
  });
  child.stdout.resume();
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
export async function stop(child) {
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
process.on('SIGTERM', () => process.exit(143));

export function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function waitFor200(url, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`no 200 from ${url} within ${timeoutMs} ms`);
    await sleep(2);
  }
}

function toMs(value) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(value);
  return m ? Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]] : Number.NaN;
}

/** One closed-loop wrk run: -t1, CONNECTIONS connections, for `seconds`. */
export function wrk(url, seconds, extra = []) {
  const out = execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', ...extra, url], { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const p50 = toMs(/\s50%\s+(\S+)/.exec(out)[1]);
  const p99 = toMs(/\s99%\s+(\S+)/.exec(out)[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = socketErrors ? socketErrors.slice(1).reduce((s, n) => s + Number(n), 0) : 0;
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  return { rps, p50, p99, non2xx, errors, requests };
}

export async function bareNode(port) {
  const child = start(process.execPath, [join(HERE, 'servers', 'bare-node.mjs')], { PORT: String(port) });
  await waitFor200(`http://127.0.0.1:${port}/`);
  return { child, url: `http://127.0.0.1:${port}/` };
}

export async function workerd(port) {
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

/** An error the CLI or the admin API answered, with its stable code. */
export class DeployError extends Error {
  constructor(name, body) {
    super(`deploy of ${name} refused: ${body?.error?.code ?? 'unknown'}: ${body?.error?.message ?? JSON.stringify(body)}`);
    this.code = body?.error?.code;
    this.detail = body?.error?.message ?? '';
  }
}

/**
 * `nimbus up` on free ports with a fresh data dir; resolves once it listens. With
 * `hello`, the bench function is deployed and answering 200 first. The handle carries
 * its pid (for /proc), its URLs and token, and deploy helpers. Thread isolation is
 * allowed: section a measures functions/hello-thread, our own trusted code.
 */
export async function nimbus({ hello = true } = {}) {
  const dataDir = mkdtempSync(join(WORK, 'nimbus-'));
  const child = start(process.execPath, [NIMBUS, 'up', '--port', '0', '--admin-port', '0', '--data-dir', dataDir, '--json', '--allow-thread-isolation']);
  const info = await new Promise((resolve, reject) => {
    let out = '';
    const onData = (d) => {
      out += d;
      if (!out.includes('\n')) return;
      child.stdout.off('data', onData);
      resolve(JSON.parse(out.split('\n')[0]));
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`nimbus up exited with ${code}: ${child.stderrTail}`)));
  });
  const token = readFileSync(info.tokenFile, 'utf8').trim();
  const auth = { authorization: `Bearer ${token}` };
  const n = {
    child,
    pid: child.pid,
    gatewayUrl: info.gatewayUrl,
    adminUrl: info.adminUrl,
    token,
    cliArgs: ['--url', info.adminUrl, '--token', token],
    /** `nimbus deploy <bench/functions/fn>` through the CLI (esbuild and all); throws DeployError. */
    deploy(fn, ...extra) {
      return new Promise((resolve, reject) => {
        execFile(process.execPath, [NIMBUS, 'deploy', join(FUNCTIONS, fn), ...n.cliArgs, '--json', ...extra], { env: ENV }, (err, stdout) => {
          let body;
          try {
            body = JSON.parse(stdout);
          } catch {}
          if (!err) resolve(body);
          else reject(body?.error ? new DeployError(fn, body) : err);
        });
      });
    },
    /** PUT a bench function folder as `name` with `manifest`, straight to the admin API. */
    deployZip(name, fn, manifest) {
      return n.putBundle(name, zipFolder(join(FUNCTIONS, fn), manifest));
    },
    /** PUT a ready-made zip as `name`. */
    async putBundle(name, bundle) {
      const res = await fetch(`${info.adminUrl}/v1/functions/${name}`, {
        method: 'PUT',
        headers: { ...auth, 'content-type': 'application/zip' },
        body: bundle,
      });
      const body = await res.json();
      if (res.status !== 200 && res.status !== 201) throw new DeployError(name, body);
      return body;
    },
    async admin(path) {
      const res = await fetch(`${info.adminUrl}${path}`, { headers: auth });
      if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
      return res.json();
    },
    stop: () => stop(child),
  };
  if (hello) {
    await n.deploy('hello');
    await waitFor200(`${info.gatewayUrl}/fn/bench-hello`);
  }
  return n;
}
