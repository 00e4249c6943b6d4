import { AUTOSCALER_TICK_MS, DEFAULT_MAX_INSTANCES, DEFAULT_MEMORY_MB, MEMORY_CHECK_INTERVAL_MS } from '../config/defaults.js';
import { ScaleLoop } from './autoscaler.js';
import { InstanceBudget } from './budget.js';
import { FunctionPool, type FunctionSpec } from './function-pool.js';
import type { Instance, LogLine } from './instance.js';
import { NodeLauncher, PythonLauncher, ThreadLauncher } from './launcher.js';
import type { LoadedMessage, LoadMessage } from './protocol/frames.js';
import { WarmPool } from './warm-pool.js';

export interface RuntimeOptions {
  codeRoot: string;
  warmPoolSize: number;
  onLog(owner: { name: string; version: number } | undefined, log: LogLine): void;
  /** Instances of all functions together, at most (default DEFAULT_MAX_INSTANCES). */
  maxInstances?: number;
  /** Extra env for an instance of a function with bindings (its state credential), revoked when it exits. */
  credentials?(spec: FunctionSpec): Promise<{ env: Record<string, string>; revoke(): void }>;
}

/** Pre-started Python interpreters, once a Python function exists. */
const PYTHON_WARM_POOL_SIZE = 1;

/**
 * Owns every instance: the warm pools of generic shims (processes; worker threads for
 * isolation: thread) and one FunctionPool per function version. A deploy retires the
 * previous version's pool, which drains and exits. A watchdog kills instances whose
 * memory passes their limit (a process's resident set, a thread's own heap and buffers).
 */
export class RuntimeManager {
  readonly #warm: WarmPool;
  readonly #opts: RuntimeOptions;
  #pythonWarm: WarmPool | undefined;
  /** Generic shims in worker threads (isolation: thread), once a thread function exists. */
  #threadWarm: WarmPool | undefined;
  /** Programs (runtime: process) start on demand: nothing to pre-warm but a Node shim. */
  readonly #processStarts: WarmPool;
  readonly #pools = new Map<string, FunctionPool>();
  readonly #current = new Map<string, FunctionPool>();
  /** Runs only while there are instances: an idle platform has no timer here. */
  #watchdog: NodeJS.Timeout | undefined;
  /** The platform-wide instance limit and the autoscaler's loop, shared by every pool. */
  readonly budget: InstanceBudget;
  readonly scaleLoop = new ScaleLoop(AUTOSCALER_TICK_MS);
  /** Deploy-check instances on their way out, awaited by dispose(). */
  readonly #checking = new Set<Instance>();
  /** Every launcher's log sink: a line goes to the function the instance was loaded for. */
  readonly #onLog = (instance: Instance, log: LogLine) => this.#opts.onLog(instance.owner, log);

  constructor(opts: RuntimeOptions) {
    this.#opts = opts;
    this.budget = new InstanceBudget(opts.maxInstances ?? DEFAULT_MAX_INSTANCES);
    const launcher = new NodeLauncher({ codeRoot: opts.codeRoot, onLog: this.#onLog });
    this.#warm = new WarmPool(launcher, opts.warmPoolSize, DEFAULT_MEMORY_MB);
    const processLauncher = new NodeLauncher({ codeRoot: opts.codeRoot, permissionModel: false, onLog: this.#onLog });
    this.#processStarts = new WarmPool(processLauncher, 0, DEFAULT_MEMORY_MB);
    this.#warm.fill();
  }

  /** The pool for this function version, created (and warmed to scale.min) on first use. */
  pool(spec: FunctionSpec): FunctionPool {
    const key = spec.key;
    let pool = this.#pools.get(key);
    if (pool) return pool;
    pool = new FunctionPool(spec, this.#warmFor(spec), (instance) => this.#loadMessage(instance, spec), {
      budget: this.budget,
      loop: this.scaleLoop,
      onStart: () => this.#armWatchdog(),
    });
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
    // A deploy's check is not a cold start: it must not grow the warm pool.
    const instance = await this.#warmFor(spec).take(spec.memoryMB, { demand: false });
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

  /**
   * Makes sure the warm pool a function takes its instances from is filling, so its
   * first request only has to LOAD (the lazily started pools: threads, Python).
   */
  prewarm(spec: FunctionSpec): void {
    this.#warmFor(spec);
  }

  #warmFor(spec: FunctionSpec): WarmPool {
    if (spec.runtime === 'node' && spec.isolation === 'thread') return this.#threads();
    return spec.runtime === 'python' ? this.#python() : spec.runtime === 'process' ? this.#processStarts : this.#warm;
  }

  /** The thread warm pool (as many workers as the process warm pool has processes), started with the first thread function. */
  #threads(): WarmPool {
    if (!this.#threadWarm) {
      const launcher = new ThreadLauncher({ onLog: this.#onLog });
      this.#threadWarm = new WarmPool(launcher, this.#opts.warmPoolSize, DEFAULT_MEMORY_MB);
      this.#threadWarm.fill();
    }
    return this.#threadWarm;
  }

  /** The Python warm pool, started with the first Python function. */
  #python(): WarmPool {
    if (!this.#pythonWarm) {
      const launcher = new PythonLauncher({ onLog: this.#onLog });
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
    this.#watchdog = undefined;
    this.scaleLoop.stop();
    await Promise.all([...this.#pools.values()].map((p) => p.dispose(graceMs)));
    await Promise.all([...this.#checking].map((i) => i.dispose()));
    await this.#warm.dispose();
    await this.#pythonWarm?.dispose();
    await this.#threadWarm?.dispose();
  }

  #retire(pool: FunctionPool): void {
    pool.onEmpty = () => {
      this.#pools.delete(pool.spec.key);
    };
    pool.retire();
  }

  #armWatchdog(): void {
    if (this.#watchdog) return;
    this.#watchdog = setInterval(() => this.#checkMemory(), MEMORY_CHECK_INTERVAL_MS);
    this.#watchdog.unref();
  }

  #checkMemory(): void {
    // Instances still starting count: their first requests may already be on the way.
    let any = false;
    for (const pool of this.#pools.values()) any ||= pool.instances.size > 0 || pool.size > 0;
    if (!any) {
      clearInterval(this.#watchdog);
      this.#watchdog = undefined;
      return;
    }
    for (const instance of this.instances()) {
      if ((instance.state === 'ready' || instance.state === 'draining') && instance.residentMB() > instance.memoryMB) instance.kill('memory');
    }
  }
}
