import { MAX_QUEUED_REQUESTS_PER_FUNCTION } from '../config/defaults.js';
import type { Bindings, Triggers } from '../config/triggers.js';
import { NimbusError } from '../shared/errors.js';
import type { Instance } from './instance.js';
import type { LoadMessage } from './protocol/frames.js';
import type { WarmPool } from './warm-pool.js';

export interface FunctionSpec {
  /** Unique per deployed version, across removals and redeploys. */
  key: string;
  name: string;
  runtime: 'node' | 'python' | 'process';
  version: number;
  load: LoadMessage;
  memoryMB: number;
  timeoutMs: number;
  scale: { min: number; max: number; concurrency: number; idleTimeoutMs: number };
  /** Asynchronous events: retries after the first attempt, and how old an event may get. */
  async: { retries: number; maxEventAgeMs: number };
  /** The handler style the deploy check detected (undefined for versions stored before it was recorded). */
  style?: string;
  /** Schedules, topic subscriptions and bucket changes that invoke the function. */
  triggers: Triggers;
  /** env.<NAME> → the KV namespace, bucket or topic it stands for. */
  bindings: Bindings;
}

interface Waiter {
  resolve(instance: Instance): void;
  reject(err: unknown): void;
}

/**
 * The instances of one function version. acquire() hands out a slot on a warm instance
 * with spare concurrency; when all are busy it starts more, up to scale.max. Concurrent
 * requests that find no slot share the starts already under way (one start serves
 * `concurrency` waiters), so a burst at zero costs as few cold starts as it can.
 * An instance idle for scale.idleTimeout exits, down to scale.min.
 */
export class FunctionPool {
  readonly spec: FunctionSpec;
  readonly #warm: WarmPool;
  readonly #instances = new Set<Instance>();
  readonly #idleTimers = new Map<Instance, NodeJS.Timeout>();
  readonly #waiters: Waiter[] = [];
  #starting = 0;
  #retired = false;
  /** Called when the pool is retired and has no instances left. */
  onEmpty: () => void = () => {};
  coldStarts = 0;
  /** Requests that got (or are waiting for) a slot on this version since it started. */
  invocations = 0;

  readonly #prepare: (instance: Instance) => LoadMessage | Promise<LoadMessage>;

  /** `prepare` gives the LOAD message for an instance (with its own credentials, if any). */
  constructor(spec: FunctionSpec, warm: WarmPool, prepare: (instance: Instance) => LoadMessage | Promise<LoadMessage> = () => spec.load) {
    this.spec = spec;
    this.#warm = warm;
    this.#prepare = prepare;
  }

  get instances(): ReadonlySet<Instance> {
    return this.#instances;
  }

  /** Instances that count against scale.max: starting and serving, not draining. */
  get size(): number {
    let serving = 0;
    for (const i of this.#instances) if (i.state !== 'draining') serving++;
    return serving + this.#starting;
  }

  /** Takes one slot; the caller must end it with an invocation (DONE) or release(). */
  acquire(signal?: AbortSignal): Promise<Instance> {
    if (this.#retired)
      return Promise.reject(new NimbusError('NIMBUS_SHUTTING_DOWN', `function "${this.spec.name}" version ${this.spec.version} is being replaced`));
    const free = this.#pick();
    if (free) {
      free.busy++;
      this.invocations++;
      return Promise.resolve(free);
    }
    if (this.#waiters.length >= MAX_QUEUED_REQUESTS_PER_FUNCTION) {
      return Promise.reject(new NimbusError('NIMBUS_TOO_MANY_REQUESTS', `function "${this.spec.name}" has ${this.#waiters.length} requests waiting`));
    }
    this.invocations++;
    return new Promise<Instance>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      this.#waiters.push(waiter);
      signal?.addEventListener('abort', () => {
        const i = this.#waiters.indexOf(waiter);
        if (i !== -1) {
          this.#waiters.splice(i, 1);
          reject(signal.reason);
        }
      });
      this.#scaleUp();
    });
  }

  /** Gives back a slot that was acquired but never used. */
  release(instance: Instance): void {
    instance.busy = Math.max(0, instance.busy - 1);
    this.#slotFreed(instance);
  }

  /** Starts instances up to scale.min (deploy warm-up, and after an instance dies). */
  ensureMin(): void {
    while (!this.#retired && this.size < this.spec.scale.min) this.#startOne();
  }

  /** No new work; idle instances go now, busy ones once their last request is done. */
  retire(): void {
    this.#retired = true;
    for (const w of this.#waiters.splice(0)) w.reject(new NimbusError('NIMBUS_SHUTTING_DOWN', `function "${this.spec.name}" was removed`));
    for (const instance of this.#instances) if (instance.busy === 0) void this.#stop(instance);
    this.#checkEmpty();
  }

  /** Stops every instance (platform shutdown, function removal after drain). */
  async dispose(graceMs?: number): Promise<void> {
    this.retire();
    await Promise.all([...this.#instances].map((i) => i.dispose(graceMs)));
  }

  #pick(): Instance | undefined {
    const limit = this.spec.scale.concurrency;
    // First fit: load concentrates on the oldest instances so the rest go idle and exit.
    for (const instance of this.#instances) if (instance.state === 'ready' && instance.busy < limit) return instance;
    return undefined;
  }

  #dispatch(): void {
    while (this.#waiters.length > 0) {
      const instance = this.#pick();
      if (!instance) break;
      instance.busy++;
      (this.#waiters.shift() as Waiter).resolve(instance);
    }
  }

  #scaleUp(): void {
    const { concurrency, max } = this.spec.scale;
    const uncovered = this.#waiters.length - this.#starting * concurrency;
    let needed = Math.ceil(uncovered / concurrency);
    while (needed-- > 0 && this.size < max) this.#startOne();
  }

  #startOne(): void {
    this.#starting++;
    this.coldStarts++;
    void this.#warm
      .take(this.spec.memoryMB)
      .then(async (instance) => {
        instance.owner = { name: this.spec.name, version: this.spec.version };
        try {
          await instance.load(await this.#prepare(instance));
        } catch (err) {
          void instance.dispose();
          throw err;
        }
        return instance;
      })
      .then(
        (instance) => {
          this.#starting--;
          if (this.#retired) {
            void instance.dispose();
            return;
          }
          this.#instances.add(instance);
          instance.onSlotFree = (i) => this.#slotFreed(i);
          instance.onExit = (i) => this.#exited(i);
          this.#dispatch();
          if (instance.busy === 0) this.#armIdle(instance);
          this.#scaleUp();
        },
        (err: unknown) => {
          this.#starting--;
          // Waiters that no running or pending instance will serve get this start's
          // error (the function's own text) rather than waiting for their timeout.
          const keep = this.#instances.size > 0 ? this.#waiters.length : this.#starting * this.spec.scale.concurrency;
          for (const w of this.#waiters.splice(keep)) w.reject(err);
          this.#checkEmpty();
        },
      );
  }

  #slotFreed(instance: Instance): void {
    this.#dispatch();
    if (instance.state === 'draining') {
      if (instance.busy === 0) void this.#stop(instance);
      // Its capacity is gone: waiting requests may need a replacement.
      this.#scaleUp();
      return;
    }
    if (this.#retired && instance.busy === 0) {
      void this.#stop(instance);
      return;
    }
    if (instance.busy === 0) this.#armIdle(instance);
  }

  #armIdle(instance: Instance): void {
    clearTimeout(this.#idleTimers.get(instance));
    const timer = setTimeout(() => {
      this.#idleTimers.delete(instance);
      if (instance.busy === 0 && this.#instances.size > this.spec.scale.min) void this.#stop(instance);
    }, this.spec.scale.idleTimeoutMs);
    timer.unref();
    this.#idleTimers.set(instance, timer);
  }

  async #stop(instance: Instance): Promise<void> {
    clearTimeout(this.#idleTimers.get(instance));
    this.#idleTimers.delete(instance);
    this.#instances.delete(instance);
    await instance.dispose();
    this.#checkEmpty();
  }

  #exited(instance: Instance): void {
    clearTimeout(this.#idleTimers.get(instance));
    this.#idleTimers.delete(instance);
    this.#instances.delete(instance);
    if (this.#retired) {
      this.#checkEmpty();
      return;
    }
    this.#dispatch();
    this.#scaleUp();
    this.ensureMin();
  }

  #checkEmpty(): void {
    if (this.#retired && this.#instances.size === 0 && this.#starting === 0) this.onEmpty();
  }
}
