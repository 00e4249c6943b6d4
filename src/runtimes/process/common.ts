import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { PROCESS_READY_TIMEOUT_MS } from '../../config/defaults.js';
import type { LoadMessage } from '../../runtime/protocol/frames.js';
import { ShimError } from '../node/invocation.js';

/** Runs the manifest's command: a string goes through /bin/sh, a list is argv. */
export function spawnCommand(msg: LoadMessage, env: Record<string, string>, stdio: 'inherit' | 'pipe'): ChildProcess {
  const command = msg.command ?? [];
  const [file, args] = typeof command === 'string' ? ['/bin/sh', ['-c', command]] : [command[0], command.slice(1)];
  return spawn(file, args, {
    cwd: msg.codeDir,
    env: { ...(process.env as Record<string, string>), ...env },
    stdio: stdio === 'inherit' ? ['pipe', 'inherit', 'inherit'] : ['pipe', 'pipe', 'pipe'],
  });
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
    const onExit = (code: number | null, signal: string | null) => fail(`the process exited (${signal ?? `exit code ${code}`}) before it could ${what}`);
    const fail = (message: string) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      reject(new ShimError('NIMBUS_LOAD_FAILED', message));
    };
    child.once('exit', onExit);
    ready.then(
      (value) => {
        clearTimeout(timer);
        child.off('exit', onExit);
        // From now on the instance lives and dies with its process.
        child.once('exit', () => process.exit(1));
        resolve(value);
      },
      (err: unknown) => fail(err instanceof Error ? err.message : String(err)),
    );
  });
}
