import { DEFAULT_MEMORY_MB, MEMORY_CHECK_INTERVAL_MS } from '../config/defaults.js';
import { FunctionPool, type FunctionSpec } from './function-pool.js';
import type { Instance, LogLine } from './instance.js';
import { NodeLauncher, PythonLauncher } from './launcher.js';
import type { LoadedMessage, LoadMessage } from './protocol/frames.js';
import { WarmPool } from './warm-pool.js';

export interface RuntimeOptions {
  codeRoot: string;
  warmPoolSize: number;
  onLog(owner: { name: string; version: number } | undefined, log: LogLine): void;
  /** Extra env for an instance of a function with bindings (its state credential), revoked when it exits. */
  credentials?(spec: FunctionSpec): Promise<{ env: Record<string, string>; revoke(): void }>;
}

/** Pre-started Python interpreters, once a Python function exists. */
const PYTHON_WARM_POOL_SIZE = 1;

/**
 * Owns every instance: the warm pool of generic shims and one FunctionPool per
 * function version. A deploy retires the previous version's pool, which drains and
 * exits. A watchdog kills instances whose resident memory passes their limit.
 */
export class RuntimeManager {
  readonly #warm: WarmPool;
  readonly #opts: RuntimeOptions;
  #pythonWarm: WarmPool | undefined;
  /** Programs (runtime: process) start on demand: nothing to pre-warm but a Node shim. */
  readonly #processStarts: WarmPool;
  readonly #pools = new Map<string, FunctionPool>();
  readonly #current = new Map<string, FunctionPool>();
  readonly #watchdog: NodeJS.Timeout;
  /** Deploy-check instances on their way out, awaited by dispose(). */
  readonly #checking = new Set<Instance>();

  constructor(opts: RuntimeOptions) {
    this.#opts = opts;
    const launcher = new NodeLauncher({ codeRoot: opts.codeRoot, onLog: (instance, log) => opts.onLog(instance.owner, log) });
    this.#warm = new WarmPool(launcher, opts.warmPoolSize, DEFAULT_MEMORY_MB);
    const processLauncher = new NodeLauncher({ codeRoot: opts.codeRoot, permissionModel: false, onLog: (instance, log) => opts.onLog(instance.owner, log) });
    this.#processStarts = new WarmPool(processLauncher, 0, DEFAULT_MEMORY_MB);
    this.#warm.fill();
    this.#watchdog = setInterval(() => this.#checkMemory(), MEMORY_CHECK_INTERVAL_MS);
    this.#watchdog.unref();
  }

  /** The pool for this function version, created (and warmed to scale.min) on first use. */
  pool(spec: FunctionSpec): FunctionPool {
    const key = spec.key;
    let pool = this.#pools.get(key);
    if (pool) return pool;
    pool = new FunctionPool(spec, this.#warmFor(spec), (instance) => this.#loadMessage(instance, spec));
    this.#pools.set(key, pool);
    const previous = this.#current.get(spec.name);
    this.#current.set(spec.name, pool);
    if (previous && previous !== pool) this.#retire(previous);
    pool.ensureMin();
    return pool;
  }

  /**
   * Loads a candidate version in a fresh instance and stops it again: a deploy's check
   * that the code loads and its handler exists. Resolves with what the instance reported
   * (the style it picked, its other entry points); rejects with the load error (the
   * function's own text).
   */
  async check(spec: FunctionSpec): Promise<LoadedMessage> {
    const instance = await this.#warmFor(spec).take(spec.memoryMB);
    instance.owner = { name: spec.name, version: spec.version };
    try {
      await instance.load(await this.#loadMessage(instance, spec));
      return instance.loaded ?? { style: instance.style };
    } finally {
      this.#checking.add(instance);
      void instance.dispose().then(() => this.#checking.delete(instance));
    }
  }

  async #loadMessage(instance: Instance, spec: FunctionSpec): Promise<LoadMessage> {
    if (Object.keys(spec.bindings).length === 0 || !this.#opts.credentials) return spec.load;
    const grant = await this.#opts.credentials(spec);
    void instance.exited.then(grant.revoke);
    return { ...spec.load, env: { ...spec.load.env, ...grant.env } };
  }

  #warmFor(spec: FunctionSpec): WarmPool {
    return spec.runtime === 'python' ? this.#python() : spec.runtime === 'process' ? this.#processStarts : this.#warm;
  }

  /** The Python warm pool, started with the first Python function. */
  #python(): WarmPool {
    if (!this.#pythonWarm) {
      const launcher = new PythonLauncher({ onLog: (instance, log) => this.#opts.onLog(instance.owner, log) });
      this.#pythonWarm = new WarmPool(launcher, PYTHON_WARM_POOL_SIZE, DEFAULT_MEMORY_MB);
      this.#pythonWarm.fill();
    }
    return this.#pythonWarm;
  }

  /** Current pool of a function, if it has one. */
  current(name: string): FunctionPool | undefined {
    return this.#current.get(name);
  }

  /** A removed function: its instances finish in-flight work and exit. */
  remove(name: string): void {
    const pool = this.#current.get(name);
    this.#current.delete(name);
    if (pool) this.#retire(pool);
  }

  /** Every live instance, for stats and the memory watchdog. */
  *instances(): Iterable<Instance> {
    for (const pool of this.#pools.values()) yield* pool.instances;
  }

  async dispose(graceMs?: number): Promise<void> {
    clearInterval(this.#watchdog);
    await Promise.all([...this.#pools.values()].map((p) => p.dispose(graceMs)));
    await Promise.all([...this.#checking].map((i) => i.dispose()));
    await this.#warm.dispose();
    await this.#pythonWarm?.dispose();
  }

  #retire(pool: FunctionPool): void {
    pool.onEmpty = () => {
      this.#pools.delete(pool.spec.key);
    };
    pool.retire();
  }

  #checkMemory(): void {
    for (const instance of this.instances()) {
      if ((instance.state === 'ready' || instance.state === 'draining') && instance.residentMB() > instance.memoryMB) instance.kill('memory');
    }
  }
}
