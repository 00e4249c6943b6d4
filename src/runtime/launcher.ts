import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_MEMORY_MB,
  DEFAULT_PIDS,
  DEFAULT_TMP_MB,
  HEAP_SHARE_OF_MEMORY,
  MAX_THREAD_YOUNG_GENERATION_MB,
  MIN_HEAP_MB,
  MIN_THREAD_YOUNG_GENERATION_MB,
  THREAD_STACK_MB,
  THREAD_YOUNG_GENERATION_SHARE,
} from '../config/defaults.js';
import type { InstanceHost } from './hosts/host.js';
import { spawnProcessHost } from './hosts/process-host.js';
import { startThreadHost } from './hosts/thread-host.js';
import { Instance, type InstanceOptions, type LogLine } from './instance.js';
import type { ChannelEvents } from './protocol/channel.js';
import { SANDBOX_PATHS } from './sandbox/bwrap.js';
import type { Sandboxes } from './sandbox/sandbox.js';

/**
 * What a generic instance is started with and cannot change afterwards: the V8 heap
 * (from memory), the size of its /tmp and its process limit. A warm pool holds
 * instances of one shape; a function of another shape starts its own.
 */
export interface InstanceShape {
  memoryMB: number;
  tmpMB: number;
  pids: number;
  /**
   * The sandbox shares the host's network namespace: only where it cannot have one of
   * its own with a way out (an ordinary user's platform bound to loopback, security.md).
   */
  hostNetwork?: boolean;
}

export const DEFAULT_SHAPE: InstanceShape = Object.freeze({ memoryMB: DEFAULT_MEMORY_MB, tmpMB: DEFAULT_TMP_MB, pids: DEFAULT_PIDS });

export function sameShape(a: InstanceShape, b: InstanceShape): boolean {
  return a.memoryMB === b.memoryMB && a.tmpMB === b.tmpMB && a.pids === b.pids && Boolean(a.hostNetwork) === Boolean(b.hostNetwork);
}

/** Starts generic runtime instances. The seam where other launchers (sandboxes, containers, threads) plug in. */
export interface InstanceLauncher {
  start(shape: InstanceShape): Promise<Instance>;
}

/**
 * Starts a program as an instance: in a sandbox when the platform has one
 * (sandbox/sandbox.ts; the program then sees the sandbox's paths), or as a plain
 * process when the operator runs without (docs/security.md).
 */
function processHost(
  sandboxes: Sandboxes | undefined,
  shape: InstanceShape,
  command: (paths: { nodeShim: string; pythonShim: string; code: string | undefined }) => string[],
): (events: ChannelEvents) => InstanceHost {
  if (sandboxes) {
    const argv = command({
      nodeShim: join(SANDBOX_PATHS.nodeShimRoot, 'runtimes', 'node', 'shim.js'),
      pythonShim: join(SANDBOX_PATHS.pythonShimRoot, 'shim.py'),
      code: SANDBOX_PATHS.code,
    });
    return (events) => sandboxes.start({ command: argv, ...shape }, events);
  }
  const [file, ...args] = command({ nodeShim: join(SHIM_DIR, 'shim.js'), pythonShim: PYTHON_SHIM, code: undefined });
  return (events) => spawnProcessHost(file, args, events);
}

export interface NodeLauncherOptions {
  /** Folder holding unpacked bundles: what an instance without a sandbox may read. */
  codeRoot: string;
  /** The sandbox every instance runs in; undefined: plain processes (the operator chose to run without). */
  sandboxes?: Sandboxes;
  /**
   * Off for runtime: process, whose shim must start the function's program: Node's
   * permission model forbids child processes.
   */
  permissionModel?: boolean;
  onLog(instance: Instance, log: LogLine): void;
  /** Connections the instance opens to the platform (its bindings' state API). */
  onTunnel?: InstanceOptions['onTunnel'];
}

const SHIM_DIR = dirname(fileURLToPath(import.meta.url)).replace(/runtime$/, 'runtimes/node');
/** The compiled platform (dist/src): the shim imports the protocol module from it. */
export const DIST_SRC_DIR = dirname(SHIM_DIR).replace(/runtimes$/, '');

/**
 * Node instances: the shim with the V8 heap sized from the function's memory and none
 * of the platform's environment, in the sandbox, and under Node's permission model as
 * a further layer: it may read only the shim and the code (and write its /tmp in a
 * sandbox), and start no processes or workers.
 */
export class NodeLauncher implements InstanceLauncher {
  readonly #opts: NodeLauncherOptions;

  constructor(opts: NodeLauncherOptions) {
    const shim = join(SHIM_DIR, 'shim.js');
    if (!existsSync(shim)) throw new Error(`node shim not found at ${shim}; run npm run build`);
    this.#opts = opts;
  }

  start(shape: InstanceShape): Promise<Instance> {
    const { sandboxes, codeRoot } = this.#opts;
    const permissions = (code: string | undefined, shimRoot: string) => {
      if (this.#opts.permissionModel === false) return [];
      const read = [`--allow-fs-read=${shimRoot}*`, `--allow-fs-read=${join(code ?? codeRoot, '*')}`];
      // Outside a sandbox /tmp is the host's, shared with everything: no writes there.
      return ['--experimental-permission', ...read, ...(code ? [`--allow-fs-write=${SANDBOX_PATHS.tmp}/*`] : [])];
    };
    const host = processHost(sandboxes, shape, ({ nodeShim, code }) => [
      process.execPath,
      // The heap gets most of the memory; the cgroup (or the platform's RSS check) holds the whole.
      `--max-old-space-size=${heapMB(shape.memoryMB)}`,
      '--no-warnings',
      ...permissions(code, code ? `${SANDBOX_PATHS.nodeShimRoot}/` : DIST_SRC_DIR),
      nodeShim,
    ]);
    return Instance.start({ host, memoryMB: shape.memoryMB, onLog: this.#opts.onLog, onTunnel: this.#opts.onTunnel });
  }
}

/** The V8 old generation for a function's memory: most of it; the rest is for everything else. */
function heapMB(memoryMB: number): number {
  return Math.max(MIN_HEAP_MB, Math.floor(memoryMB * HEAP_SHARE_OF_MEMORY));
}

/**
 * Thread instances (isolation: thread, trusted JavaScript only): the same shim in a
 * worker thread of the platform's process, with the same heap size a process would get
 * as the worker's resource limits, plus bounds on its young generation and stack. No
 * permission model (it is per process): the code can do whatever the platform can.
 */
export class ThreadLauncher implements InstanceLauncher {
  readonly #shim: string;
  readonly #opts: Pick<NodeLauncherOptions, 'onLog' | 'onTunnel'>;

  constructor(opts: Pick<NodeLauncherOptions, 'onLog' | 'onTunnel'>) {
    this.#shim = join(SHIM_DIR, 'shim.js');
    if (!existsSync(this.#shim)) throw new Error(`node shim not found at ${this.#shim}; run npm run build`);
    this.#opts = opts;
  }

  start({ memoryMB }: InstanceShape): Promise<Instance> {
    const young = Math.floor(memoryMB * THREAD_YOUNG_GENERATION_SHARE);
    const resourceLimits = {
      maxOldGenerationSizeMb: heapMB(memoryMB),
      maxYoungGenerationSizeMb: Math.min(MAX_THREAD_YOUNG_GENERATION_MB, Math.max(MIN_THREAD_YOUNG_GENERATION_MB, young)),
      stackSizeMb: THREAD_STACK_MB,
    };
    return Instance.start({
      host: (events) => startThreadHost({ shim: this.#shim, resourceLimits }, events),
      memoryMB,
      onLog: this.#opts.onLog,
      onTunnel: this.#opts.onTunnel,
    });
  }
}

/** Where the Python shim lives: shipped as source, it needs no build. */
const PYTHON_SHIM = fileURLToPath(new URL('../../../src/runtimes/python/shim.py', import.meta.url));
export const PYTHON_SHIM_DIR = dirname(PYTHON_SHIM);

/** The system's python3: Debian's, whose packages (python3-flask, ...) functions may import. */
export function findPython(): string {
  for (const candidate of ['/usr/bin/python3', '/usr/local/bin/python3']) if (existsSync(candidate)) return candidate;
  return 'python3';
}

/**
 * Python instances: the system's python3 running the stdlib-only shim, unbuffered and
 * without writing bytecode into the (content-addressed) bundle folder, with none of
 * the platform's environment, in the sandbox.
 */
export class PythonLauncher implements InstanceLauncher {
  readonly #opts: Pick<NodeLauncherOptions, 'onLog' | 'onTunnel' | 'sandboxes'>;
  readonly #python = findPython();

  constructor(opts: Pick<NodeLauncherOptions, 'onLog' | 'onTunnel' | 'sandboxes'>) {
    if (!existsSync(PYTHON_SHIM)) throw new Error(`python shim not found at ${PYTHON_SHIM}`);
    this.#opts = opts;
  }

  start(shape: InstanceShape): Promise<Instance> {
    const host = processHost(this.#opts.sandboxes, shape, ({ pythonShim }) => [this.#python, '-u', '-B', pythonShim]);
    return Instance.start({ host, memoryMB: shape.memoryMB, onLog: this.#opts.onLog, onTunnel: this.#opts.onTunnel });
  }
}
