import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  HEAP_SHARE_OF_MEMORY,
  MAX_THREAD_YOUNG_GENERATION_MB,
  MIN_HEAP_MB,
  MIN_THREAD_YOUNG_GENERATION_MB,
  THREAD_STACK_MB,
  THREAD_YOUNG_GENERATION_SHARE,
} from '../config/defaults.js';
import { spawnProcessHost } from './hosts/process-host.js';
import { startThreadHost } from './hosts/thread-host.js';
import { Instance, type LogLine } from './instance.js';

/** Starts generic runtime instances. The seam where other launchers (sandboxes, containers, threads) plug in. */
export interface InstanceLauncher {
  start(memoryMB: number): Promise<Instance>;
}

export interface NodeLauncherOptions {
  /** Folder holding unpacked bundles: the only data the instance may read. */
  codeRoot: string;
  /**
   * Off for runtime: process, whose shim must start the function's program: Node's
   * permission model forbids child processes.
   */
  permissionModel?: boolean;
  onLog(instance: Instance, log: LogLine): void;
}

const SHIM_DIR = dirname(fileURLToPath(import.meta.url)).replace(/runtime$/, 'runtimes/node');
/** The compiled platform (dist/src): the shim imports the protocol module from it. */
const DIST_SRC_DIR = dirname(SHIM_DIR).replace(/runtimes$/, '');

/**
 * Node instances: the shim under Node's permission model, allowed to read only the
 * compiled shim and the bundle store (no writes, no child processes, no workers), with
 * the V8 heap sized from the function's memory and none of the platform's environment.
 */
export class NodeLauncher implements InstanceLauncher {
  readonly #args: (memoryMB: number) => string[];
  readonly #onLog: NodeLauncherOptions['onLog'];

  constructor(opts: NodeLauncherOptions) {
    const shim = join(SHIM_DIR, 'shim.js');
    if (!existsSync(shim)) throw new Error(`node shim not found at ${shim}; run npm run build`);
    this.#onLog = opts.onLog;
    const permissions =
      opts.permissionModel === false ? [] : ['--experimental-permission', `--allow-fs-read=${DIST_SRC_DIR}*`, `--allow-fs-read=${join(opts.codeRoot, '*')}`];
    this.#args = (memoryMB) => [
      // The heap gets most of the memory; the platform's RSS check enforces the whole.
      `--max-old-space-size=${heapMB(memoryMB)}`,
      '--no-warnings',
      ...permissions,
      shim,
    ];
  }

  start(memoryMB: number): Promise<Instance> {
    const args = this.#args(memoryMB);
    return Instance.start({ host: (events) => spawnProcessHost(process.execPath, args, events), memoryMB, onLog: this.#onLog });
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
  readonly #onLog: NodeLauncherOptions['onLog'];

  constructor(opts: Pick<NodeLauncherOptions, 'onLog'>) {
    this.#shim = join(SHIM_DIR, 'shim.js');
    if (!existsSync(this.#shim)) throw new Error(`node shim not found at ${this.#shim}; run npm run build`);
    this.#onLog = opts.onLog;
  }

  start(memoryMB: number): Promise<Instance> {
    const young = Math.floor(memoryMB * THREAD_YOUNG_GENERATION_SHARE);
    const resourceLimits = {
      maxOldGenerationSizeMb: heapMB(memoryMB),
      maxYoungGenerationSizeMb: Math.min(MAX_THREAD_YOUNG_GENERATION_MB, Math.max(MIN_THREAD_YOUNG_GENERATION_MB, young)),
      stackSizeMb: THREAD_STACK_MB,
    };
    return Instance.start({ host: (events) => startThreadHost({ shim: this.#shim, resourceLimits }, events), memoryMB, onLog: this.#onLog });
  }
}

/** Where the Python shim lives: shipped as source, it needs no build. */
const PYTHON_SHIM = fileURLToPath(new URL('../../../src/runtimes/python/shim.py', import.meta.url));

/** The system's python3: Debian's, whose packages (python3-flask, ...) functions may import. */
export function findPython(): string {
  for (const candidate of ['/usr/bin/python3', '/usr/local/bin/python3']) if (existsSync(candidate)) return candidate;
  return 'python3';
}

/**
 * Python instances: the system's python3 running the stdlib-only shim, unbuffered and
 * without writing bytecode into the (content-addressed) bundle folder, with none of
 * the platform's environment. Memory is held by the platform's RSS watchdog.
 */
export class PythonLauncher implements InstanceLauncher {
  readonly #onLog: NodeLauncherOptions['onLog'];
  readonly #python = findPython();

  constructor(opts: Pick<NodeLauncherOptions, 'onLog'>) {
    if (!existsSync(PYTHON_SHIM)) throw new Error(`python shim not found at ${PYTHON_SHIM}`);
    this.#onLog = opts.onLog;
  }

  start(memoryMB: number): Promise<Instance> {
    const python = this.#python;
    return Instance.start({ host: (events) => spawnProcessHost(python, ['-u', '-B', PYTHON_SHIM], events), memoryMB, onLog: this.#onLog });
  }
}
