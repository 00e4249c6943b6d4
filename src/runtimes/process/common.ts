import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { PROCESS_READY_TIMEOUT_MS } from '../../config/defaults.js';
import type { LoadMessage } from '../../runtime/protocol/frames.js';
import { ShimError } from '../node/invocation.js';

/** What a long-running program last wrote to stderr, for the error when it fails to get ready. */
const STDERR_TAIL_BYTES = 2_048;
const stderrTails = new WeakMap<ChildProcess, string>();

/**
 * Runs the manifest's command: a string goes through /bin/sh, a list is argv.
 * 'forward' (long-running programs) copies the program's output to the instance's own
 * stdout/stderr, which the platform logs, and keeps the tail of stderr for raceReady's error;
 * 'pipe' (one process per request) leaves the pipes to the caller.
 */
export function spawnCommand(msg: LoadMessage, env: Record<string, string>, stdio: 'forward' | 'pipe'): ChildProcess {
  const command = msg.command ?? [];
  const [file, args] = typeof command === 'string' ? ['/bin/sh', ['-c', command]] : [command[0], command.slice(1)];
  const child = spawn(file, args, { cwd: msg.codeDir, env: { ...(process.env as Record<string, string>), ...env }, stdio: 'pipe' });
  if (stdio === 'forward') {
    child.stdout?.on('data', (c: Buffer) => process.stdout.write(c));
    child.stderr?.on('data', (c: Buffer) => {
      process.stderr.write(c);
      stderrTails.set(child, ((stderrTails.get(child) ?? '') + c.toString('utf8')).slice(-STDERR_TAIL_BYTES));
    });
  }
  return child;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Rejects with NIMBUS_LOAD_FAILED when the child exits before `ready` settles, or the time runs out. */
export function raceReady<T>(child: ChildProcess, ready: Promise<T>, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => fail(`the process did not ${what} within ${PROCESS_READY_TIMEOUT_MS} ms`), PROCESS_READY_TIMEOUT_MS);
    // 'close' (not 'exit'): the pipes are drained by then, so the stderr tail is complete.
    const onExit = (code: number | null, signal: string | null) => fail(`the process exited (${signal ?? `exit code ${code}`}) before it could ${what}`);
    const fail = (message: string) => {
      clearTimeout(timer);
      child.off('close', onExit);
      child.off('error', onError);
      // The program's own words say why (a missing module, a bad flag): name them in the error.
      const said = (stderrTails.get(child) ?? '').trim().split('\n').slice(-5).join('\n');
      reject(new ShimError('NIMBUS_LOAD_FAILED', said ? `${message}; its stderr ends with:\n${said}` : message));
    };
    child.once('close', onExit);
    const onError = (err: Error) => fail(`the command could not start: ${err.message}`);
    child.once('error', onError);
    ready.then(
      (value) => {
        clearTimeout(timer);
        child.off('close', onExit);
        // From now on the instance lives and dies with its process.
        child.once('exit', () => process.exit(1));
        resolve(value);
      },
      (err: unknown) => fail(err instanceof Error ? err.message : String(err)),
    );
  });
}
