import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { buildFunction, stopBuilder } from '../src/build/bundle.js';
import { Platform, type PlatformOptions } from '../src/platform.js';

export const REPO_ROOT = join(dirname(new URL(import.meta.url).pathname), '..', '..');
export const CLI = join(REPO_ROOT, 'bin', 'nimbus.js');

/** Every variable an instance sees besides its manifest's env (docs/runtime.md), sorted. */
export const INSTANCE_BASE_ENV = [
  'AWS_LAMBDA_FUNCTION_MEMORY_SIZE',
  'AWS_LAMBDA_FUNCTION_NAME',
  'AWS_LAMBDA_FUNCTION_VERSION',
  'HOME',
  'LANG',
  'NIMBUS_FUNCTION_MEMORY_MB',
  'NIMBUS_FUNCTION_NAME',
  'NIMBUS_FUNCTION_TIMEOUT_MS',
  'NIMBUS_FUNCTION_VERSION',
  'NODE_ENV',
  'PATH',
  'TZ',
];

const tempDirs: string[] = [];

/** A temp folder removed when the test file (or suite) ends; `before` runs first (e.g. stops a platform using it). */
export function tempDir(prefix = 'nimbus-test-', before?: () => Promise<void>): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  after(async () => {
    await before?.();
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Writes a function folder: files by relative path, plus nimbus.yaml from `manifest`. */
export function functionDir(files: Record<string, string>, manifest?: string): string {
  const dir = tempDir('nimbus-fn-');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  if (manifest !== undefined) writeFileSync(join(dir, 'nimbus.yaml'), manifest);
  return dir;
}

export interface LogLine {
  line: string;
  requestId: string | null;
  stream: string;
}

export interface TestPlatform {
  platform: Platform;
  /** Calls the gateway. */
  gw(path: string, init?: RequestInit): Promise<Response>;
  /** Calls the admin API with the token (or the given headers). */
  admin(method: string, path: string, body?: Uint8Array | string, headers?: Record<string, string>): Promise<Response>;
  /** Builds a folder and uploads it through the admin API; returns the response body. */
  deploy(
    dir: string,
    overrides?: Record<string, unknown>,
  ): Promise<{ created: boolean; function: { name: string; version: number; instances: { ready: number } } }>;
  /** Uploads a folder whose deploy must fail its load check: asserts 422 and the code, returns the error. */
  deployRejected(dir: string, code: string): Promise<{ code: string; message: string; hint: string }>;
  /** Deploys a one-file Web-standard or Lambda function from source text. */
  deploySource(name: string, source: string, manifest?: string): Promise<void>;
  /** The function's stored log lines (query: requestId, limit, after). */
  logs(name: string, query?: Record<string, string>): Promise<LogLine[]>;
  functionInfo(name: string): Promise<{ version: number; instances: { ready: number; busy: number; coldStarts: number } }>;
}

const running = new Set<Platform>();

/** Starts a platform on ports the OS picks with a temp data dir; stopped when the file ends. */
export async function startPlatform(opts: Partial<PlatformOptions> = {}): Promise<TestPlatform> {
  // The platform stops before its data dir goes: a running one still reads its sandbox files there.
  let stop = async () => {};
  const dataDir = opts.dataDir ?? tempDir('nimbus-data-', () => stop());
  const platform = await Platform.start({
    host: '127.0.0.1',
    port: 0,
    adminPort: 0,
    ...opts,
    dataDir,
    warmPoolSize: opts.warmPoolSize ?? 1,
  });
  running.add(platform);
  stop = () => platform.stop(2_000);
  after(stop);
  const admin = (method: string, path: string, body?: Uint8Array | string, headers?: Record<string, string>) =>
    fetch(`${platform.adminUrl}${path}`, { method, body, headers: headers ?? { authorization: `Bearer ${platform.token}` } });
  const upload = async (dir: string, overrides: Record<string, unknown> = {}) => {
    const built = await buildFunction(dir, overrides);
    return admin('PUT', `/v1/functions/${built.manifest.name}`, built.zip, {
      authorization: `Bearer ${platform.token}`,
      'content-type': 'application/zip',
    });
  };
  const deploy: TestPlatform['deploy'] = async (dir, overrides = {}) => {
    const res = await upload(dir, overrides);
    const body = (await res.json()) as Awaited<ReturnType<TestPlatform['deploy']>>;
    assert.ok(res.status === 200 || res.status === 201, `deploy failed: ${res.status} ${JSON.stringify(body)}`);
    return body;
  };
  return {
    platform,
    gw: (path, init) => fetch(`${platform.gatewayUrl}${path}`, init),
    admin,
    deploy,
    async deployRejected(dir, code) {
      const res = await upload(dir);
      const body = (await res.json()) as { error: { code: string; message: string; hint: string } };
      assert.equal(res.status, 422, `expected 422 ${code}, got ${res.status} ${JSON.stringify(body)}`);
      assert.equal(body.error.code, code);
      return body.error;
    },
    async deploySource(name, source, manifest = '') {
      await deploy(functionDir({ 'index.js': source }, `name: ${name}\n${manifest}`));
    },
    async logs(name, query = {}) {
      const res = await admin('GET', `/v1/functions/${name}/logs?${new URLSearchParams(query)}`);
      assert.equal(res.status, 200);
      return ((await res.json()) as { logs: LogLine[] }).logs;
    },
    async functionInfo(name) {
      const res = await admin('GET', `/v1/functions/${name}`);
      assert.equal(res.status, 200);
      return ((await res.json()) as { function: Awaited<ReturnType<TestPlatform['functionInfo']>> }).function;
    },
  };
}

/** Pids of this process's live children (zombies excluded). */
export function childPids(parent = process.pid): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === parent && fields[0] !== 'Z') pids.push(Number(entry));
    } catch {
      // Gone already.
    }
  }
  return pids;
}

/**
 * The last test of a file: stops every platform the file started, then fails if any
 * child process (an instance, a shim, a CLI) is still alive.
 */
export function testNoLeakedChildren(): void {
  test('no child process outlives the test file', async () => {
    await Promise.all([...running].map((p) => p.stop(2_000)));
    running.clear();
    await stopBuilder();
    // Children being reaped may take a moment to disappear from /proc.
    const deadline = Date.now() + 3_000;
    let left = childPids();
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      left = childPids();
    }
    assert.deepEqual(left, [], `child processes leaked: ${left.map((p) => `${p} ${safeCmdline(p)}`).join('; ')}`);
    // Programs a function started (runtime: process) are grandchildren, re-parented when
    // their instance dies: find them by their working folder inside this file's temp folders.
    let orphans = orphanPids();
    while (orphans.length > 0 && Date.now() < deadline + 2_000) {
      await new Promise((r) => setTimeout(r, 50));
      orphans = orphanPids();
    }
    assert.deepEqual(orphans, [], `function programs outlived their instance: ${orphans.map((p) => `${p} ${safeCmdline(p)}`).join('; ')}`);
  });
}

function orphanPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      if (tempDirs.some((dir) => cwd === dir || cwd.startsWith(`${dir}/`))) pids.push(Number(entry));
    } catch {
      // gone, or not ours to inspect
    }
  }
  return pids;
}

function safeCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ').slice(0, 200);
  } catch {
    return '';
  }
}

/** Polls until check() is truthy or the deadline passes (for effects of real timers in other processes). */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 5_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The environment for spawned CLI processes: without NODE_EXTRA_CA_CERTS, which slows every Node start. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_EXTRA_CA_CERTS;
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  return env;
}
