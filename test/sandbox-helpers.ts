import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after } from 'node:test';
import { CLI, cleanEnv } from './helpers.js';

/** Test helpers for the sandbox work (issue 15): the CLI as a user runs it, and what a data dir holds. */

/** Paths (relative to root) of files whose bytes contain `needle`. */
export function filesContaining(root: string, needle: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`);
      else if (readFileSync(join(dir, e.name)).includes(needle)) found.push(`${prefix}${e.name}`);
    }
  };
  walk(root, '');
  return found;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `nimbus <args>` as a user would, with `input` piped to its stdin (closed at once without it). */
export function runCli(args: string[], opts: { cwd?: string; env?: Record<string, string>; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: cleanEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/** The CLI's flags for an in-process test platform. */
export function target(platform: { adminUrl: string; token: string }): string[] {
  return ['--url', platform.adminUrl, '--token', platform.token];
}

export interface UpProcess {
  child: ChildProcess;
  info: { gatewayUrl: string; adminUrl: string; tokenFile: string; pid: number };
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM, then its exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `nimbus up --json` on free ports and resolves once it printed its URLs; killed
 * when the file ends. `uid`: as that (unprivileged) user instead, through setpriv.
 */
export function startUp(dataDir: string, extra: string[] = [], opts: { uid?: number } = {}): Promise<UpProcess> {
  return new Promise((resolve, reject) => {
    const argv = [CLI, 'up', '--port', '0', '--admin-port', '0', '--warm-pool', '1', '--data-dir', dataDir, '--json', ...extra];
    const as = opts.uid === undefined ? [] : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', '--'];
    const [file, ...args] = [...as, process.execPath, ...argv];
    const child = spawn(file, args, {
      env: cleanEnv(opts.uid === undefined ? {} : { HOME: dataDir }),
    });
    after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let out = '';
    let err = '';
    child.stderr?.on('data', (d) => {
      err += d;
    });
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    child.stdout?.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl === -1) return;
      resolve({
        child,
        info: JSON.parse(out.slice(0, nl)),
        stderr: () => err,
        stop: () => {
          if (child.exitCode === null) child.kill('SIGTERM');
          return exited;
        },
      });
    });
    void exited.then((code) => reject(new Error(`nimbus up exited with ${code}: ${err}`)));
  });
}
