import { AUTOSCALER_TICK_MS, DEFAULT_MAX_INSTANCES, MEMORY_CHECK_INTERVAL_MS } from '../config/defaults.js';
import { NimbusError } from '../shared/errors.js';
import { ScaleLoop } from './autoscaler.js';
import { InstanceBudget } from './budget.js';
import { FunctionPool, type FunctionSpec, shapeOf } from './function-pool.js';
import type { Instance, InstanceOptions, LogLine } from './instance.js';
import { DEFAULT_SHAPE, type InstanceLauncher, type InstanceShape, NodeLauncher, PythonLauncher, ThreadLauncher } from './launcher.js';
import type { LoadedMessage, LoadMessage } from './protocol/frames.js';
import type { Sandboxes } from './sandbox/sandbox.js';
import { WarmPool } from './warm-pool.js';

export interface RuntimeOptions {
  codeRoot: string;
  warmPoolSize: number;
  onLog(owner: { name: string; version: number } | undefined, log: LogLine): void;
  /** Instances of all functions together, at most (default DEFAULT_MAX_INSTANCES). */
  maxInstances?: number;
  /** A connection an instance opened to the platform over its channel (its bindings' state API). */
  onTunnel?: InstanceOptions['onTunnel'];
  /** Extra env for an instance of a function with bindings (its state credential), revoked when it exits. */
  credentials?(spec: FunctionSpec): Promise<{ env: Record<string, string>; revoke(): void }>;
  /** The sandbox process instances run in. Without it they run as plain processes, unless `refuseUnsandboxed` says why not. */
  sandboxes?: Sandboxes;
  /** Set when instances must not run without a sandbox (the platform listens beyond loopback): the reason, for the error. */
  refuseUnsandboxed?: string;
}

/** Instead of starting an unsandboxed instance where that is not allowed: the reason, as an error. */
class RefusingLauncher implements InstanceLauncher {
  readonly #reason: string;

  constructor(reason: string) {
    this.#reason = reason;
  }

  start(_shape: InstanceShape): Promise<Instance> {
    return Promise.reject(new NimbusError('NIMBUS_SANDBOX_UNAVAILABLE', this.#reason));
  }
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
  readonly #refuse: InstanceLauncher | undefined;
  /** What the warm pools hold. */
  readonly #defaultShape: InstanceShape;

  constructor(opts: RuntimeOptions) {
    this.#opts = opts;
    this.budget = new InstanceBudget(opts.maxInstances ?? DEFAULT_MAX_INSTANCES);
    const refuse = !opts.sandboxes && opts.refuseUnsandboxed !== undefined ? new RefusingLauncher(opts.refuseUnsandboxed) : undefined;
    const common = { codeRoot: opts.codeRoot, sandboxes: opts.sandboxes, onLog: this.#onLog, onTunnel: opts.onTunnel };
    const launcher = refuse ?? new NodeLauncher(common);
    this.#defaultShape = { ...DEFAULT_SHAPE, hostNetwork: opts.sandboxes?.info.network === 'host' };
    this.#warm = new WarmPool(launcher, refuse ? 0 : opts.warmPoolSize, this.#defaultShape);
    const processLauncher = refuse ?? new NodeLauncher({ ...common, permissionModel: false });
    this.#processStarts = new WarmPool(processLauncher, 0, this.#defaultShape);
    this.#refuse = refuse;
    this.#warm.fill();
  }

  /** The pool for this function version, created (and warmed to scale.min) on first use. */
  pool(spec: FunctionSpec): FunctionPool {
    const key = spec.key;
    let pool = this.#pools.get(key);
    if (pool) return pool;
    pool = new FunctionPool(spec, this.#warmFor(spec), (instance) => this.#loadMessage(instance, spec), {
      shape: this.#shapeOf(spec),
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
    const instance = await this.#warmFor(spec).take(this.#shapeOf(spec), { demand: false });
    instance.owner = { name: spec.name, version: spec.version };
    try {
      await instance.load(await this.#loadMessage(instance, spec));
      return instance.loaded ?? { style: instance.style };
    } finally {
      this.#checking.add(instance);
      void instance.dispose().then(() => this.#checking.delete(instance));
    }
  }

  /**
   * What a function's instances start with. Where the sandbox can give an instance no
   * way out of a network namespace of its own but may share the host's (security.md),
   * outbound functions share it and network: none functions get their own.
   */
  #shapeOf(spec: FunctionSpec): InstanceShape {
    const outbound = spec.sandbox?.network.outbound ?? true;
    return { ...shapeOf(spec), hostNetwork: this.#opts.sandboxes?.info.network === 'host' && outbound };
  }

  async #loadMessage(instance: Instance, spec: FunctionSpec): Promise<LoadMessage> {
    let load = spec.load;
    if (instance.sandboxed) {
      const network = spec.sandbox?.network ?? { outbound: true, allow: [] };
      if (network.outbound && this.#opts.sandboxes?.info.network === 'none') {
        instance.kill('shutdown');
        throw new NimbusError(
          'NIMBUS_SANDBOX_UNAVAILABLE',
          `function "${spec.name}" needs outbound network, which this platform's sandbox cannot give (${this.#opts.sandboxes.info.reason ?? 'no slirp4netns'})`,
          { hint: 'set `network: none` in its nimbus.yaml, or install slirp4netns and run the platform as root (docs/security.md)' },
        );
      }
      const { pids } = shapeOf(spec);
      const codeDir = await instance.specialize({ bundleDir: spec.load.codeDir, memoryMB: spec.memoryMB, pids, network });
      load = { ...load, codeDir };
    }
    if (Object.keys(spec.bindings).length === 0 || !this.#opts.credentials) return load;
    const grant = await this.#opts.credentials(spec);
    void instance.exited.then(grant.revoke);
    return { ...load, env: { ...load.env, ...grant.env } };
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
      const launcher = new ThreadLauncher({ onLog: this.#onLog, onTunnel: this.#opts.onTunnel });
      this.#threadWarm = new WarmPool(launcher, this.#opts.warmPoolSize, this.#defaultShape);
      this.#threadWarm.fill();
    }
    return this.#threadWarm;
  }

  /** The Python warm pool, started with the first Python function. */
  #python(): WarmPool {
    if (!this.#pythonWarm) {
      const launcher = this.#refuse ?? new PythonLauncher({ onLog: this.#onLog, onTunnel: this.#opts.onTunnel, sandboxes: this.#opts.sandboxes });
      this.#pythonWarm = new WarmPool(launcher, this.#refuse ? 0 : PYTHON_WARM_POOL_SIZE, this.#defaultShape);
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
    this.#opts.sandboxes?.close();
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
