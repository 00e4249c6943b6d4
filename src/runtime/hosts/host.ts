import type { Readable } from 'node:stream';
import type { FrameChannel } from '../protocol/channel.js';
import type { SandboxGrant } from '../sandbox/grant.js';

/** How an instance runs: its own OS process (sandboxed), or a worker thread in the platform's process (trusted code). */
export type Isolation = 'process' | 'thread';

/** How a host ended. */
export interface HostExit {
  code: number | null;
  signal: string | null;
  /** The runtime itself reported running out of memory (a worker's heap limit). */
  outOfMemory: boolean;
  /** Why it could not run at all, or the error it died of, when known. */
  error?: string;
}

/**
 * What an instance runs in: an OS process or a worker thread. Instance (instance.ts)
 * drives its lifecycle the same way over either; only this seam differs.
 *
 * | step            | process (process-host.ts)       | thread (thread-host.ts)                      |
 * |-----------------|---------------------------------|----------------------------------------------|
 * | frames          | Unix socket on fd 3             | MessagePort, window in shared memory         |
 * | logs            | stdout/stderr pipes             | the worker's stdout/stderr streams           |
 * | stop()          | SIGTERM (finish, then exit)     | a stop message (finish, then exit)           |
 * | kill()          | SIGKILL to the process group    | worker.terminate() (interrupts any JS loop)  |
 * | memoryMB()      | resident set from /proc         | the worker's own heap + external memory      |
 * | exit            | 'exit' (code or signal)         | 'exit' (code), ERR_WORKER_OUT_OF_MEMORY      |
 */
export interface InstanceHost {
  readonly isolation: Isolation;
  /** The OS process the instance runs in: the platform's own for a thread. */
  readonly pid: number | undefined;
  readonly channel: FrameChannel;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Resolves once, when the host has ended. */
  readonly exit: Promise<HostExit>;
  /** Asks for a graceful stop: in-flight requests finish, then the instance exits. */
  stop(): void;
  /** Ends it now. */
  kill(): void;
  /** Memory in use, in MB (0 when unknown). */
  memoryMB(): number;
  /** A sandbox: once its program is READY, sets up what it needs besides (its network); resolves when done. */
  prepare?(): Promise<void>;
  /** A sandbox: gives it one function's code, limits and network before LOAD; resolves with the code's path inside. */
  specialize?(grant: SandboxGrant): Promise<string>;
}
