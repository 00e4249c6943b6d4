import { AUTOSCALER_TICK_MS, MAX_QUEUED_REQUESTS_PER_FUNCTION } from '../config/defaults.js';
import type { Bindings, Triggers } from '../config/triggers.js';
import { NimbusError } from '../shared/errors.js';
import {
  ConcurrencyWindow,
  decideScale,
  INITIAL_SCALE_STATE,
  MAX_SCALE_DOWN_RATE,
  MAX_SCALE_UP_RATE,
  PANIC_THRESHOLD,
  PANIC_WINDOW_FRACTION,
  type Scalable,
  ScaleLoop,
  type ScalePolicy,
  type ScaleState,
} from './autoscaler.js';
import type { BudgetMember, InstanceBudget } from './budget.js';
import type { Instance } from './instance.js';
import { DEFAULT_SHAPE, type InstanceShape } from './launcher.js';
import type { LoadMessage } from './protocol/frames.js';
import type { NetworkPolicy } from './sandbox/grant.js';
import type { WarmPool } from './warm-pool.js';

export interface FunctionSpec {
  /** Unique per deployed version, across removals and redeploys. */
  key: string;
  name: string;
  runtime: 'node' | 'python' | 'process';
  /** What each instance runs in: its own OS process (undefined means process), or a worker thread of the platform (node only). */
  isolation?: 'process' | 'thread';
  version: number;
  load: LoadMessage;
  memoryMB: number;
  timeoutMs: number;
  scale: {
    min: number;
    max: number;
    concurrency: number;
    /** No request for this long: the function goes down to min (scale to zero). */
    idleTimeoutMs: number;
    /** The autoscaler's stable window (its panic window is a tenth of it). */
    windowMs: number;
    /** Fraction of concurrency the autoscaler aims for per instance. */
    utilization: number;
  };
  /** Asynchronous events: retries after the first attempt, and how old an event may get. */
  async: { retries: number; maxEventAgeMs: number };
  /** The handler style the deploy check detected (undefined for versions stored before it was recorded). */
  style?: string;
  /** Schedules, topic subscriptions and bucket changes that invoke the function. */
  triggers: Triggers;
  /** env.<NAME> → the KV namespace, bucket or topic it stands for. */
  bindings: Bindings;
  /** Its sandbox: /tmp size, process limit, network (defaults when left out). */
  sandbox?: { tmpMB: number; pids: number; network: NetworkPolicy };
}

/** What a function's instances start with (launcher.ts). */
export function shapeOf(spec: FunctionSpec): InstanceShape {
  return { memoryMB: spec.memoryMB, tmpMB: spec.sandbox?.tmpMB ?? DEFAULT_SHAPE.tmpMB, pids: spec.sandbox?.pids ?? DEFAULT_SHAPE.pids };
}

interface Waiter {
  resolve(instance: Instance): void;
  reject(err: unknown): void;
}

/** What the pools of one platform share: the instance limit and the autoscaler's loop. */
export interface PoolContext {
  budget?: InstanceBudget;
  loop?: ScaleLoop;
  now?: () => number;
  /** An instance starts for this pool (the runtime's memory watchdog wakes up). */
  onStart?: () => void;
  /** What the pool's instances start with (default: shapeOf(spec)). */
  shape?: InstanceShape;
}

/**
 * The instances of one function version. acquire() hands out a slot on a warm instance
 * with spare concurrency; when all are busy the request waits and the pool starts more,
 * up to scale.max (the activator path: concurrent requests share the starts already
 * under way, one start serving `concurrency` waiters, so a burst at zero costs as few
 * cold starts as it can). Besides that, the autoscaler (autoscaler.ts) decides every
 * tick from the requests in flight how many instances the function should have: it
 * starts instances ahead of demand when load passes the target utilisation, and stops
 * idle instances it no longer needs; with no request for scale.idleTimeout the
 * function goes down to scale.min (zero by default).
 */
export class FunctionPool implements BudgetMember, Scalable {
  readonly spec: FunctionSpec;
  readonly #warm: WarmPool;
  readonly #instances = new Set<Instance>();
  readonly #waiters: Waiter[] = [];
  readonly #budget: InstanceBudget | undefined;
  readonly #loop: ScaleLoop;
  readonly #now: () => number;
  readonly #policy: ScalePolicy;
  readonly #window: ConcurrencyWindow;
  #scale: ScaleState = INITIAL_SCALE_STATE;
  #panic = false;
  #lastRequestAt = 0;
  #starting = 0;
  #retired = false;
  /** Busy slots over all instances, kept current per event (no loop over instances per request). */
  #busyTotal = 0;
  readonly #seenBusy = new Map<Instance, number>();
  readonly #onStart: () => void;
  readonly #shape: InstanceShape;
  /** Instances holding a unit of the platform budget (started by this pool and not yet gone). */
  readonly #counted = new Set<Instance>();
  /** Called when the pool is retired and has no instances left. */
  onEmpty: () => void = () => {};
  coldStarts = 0;
  /** Requests that got (or are waiting for) a slot on this version since it started. */
  invocations = 0;

  readonly #prepare: (instance: Instance) => LoadMessage | Promise<LoadMessage>;

  /** `prepare` gives the LOAD message for an instance (with its own credentials, if any). */
  constructor(
    spec: FunctionSpec,
    warm: WarmPool,
    prepare: (instance: Instance) => LoadMessage | Promise<LoadMessage> = () => spec.load,
    context: PoolContext = {},
  ) {
    this.spec = spec;
    this.#warm = warm;
    this.#prepare = prepare;
    this.#budget = context.budget;
    this.#loop = context.loop ?? new ScaleLoop(AUTOSCALER_TICK_MS);
    this.#now = context.now ?? Date.now;
    this.#onStart = context.onStart ?? (() => {});
    this.#shape = context.shape ?? shapeOf(spec);
    const { min, max, concurrency, windowMs, utilization, idleTimeoutMs } = spec.scale;
    this.#policy = {
      min,
      max,
      concurrency,
      utilization,
      stableWindowMs: windowMs,
      panicWindowMs: Math.max(1_000, windowMs * PANIC_WINDOW_FRACTION),
      panicThreshold: PANIC_THRESHOLD,
      maxScaleUpRate: MAX_SCALE_UP_RATE,
      maxScaleDownRate: MAX_SCALE_DOWN_RATE,
      scaleToZeroGraceMs: idleTimeoutMs,
    };
    this.#window = new ConcurrencyWindow(windowMs);
    this.#budget?.join(this);
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

  /** The autoscaler's last decision and whether it is in panic mode. */
  get autoscaler(): { desired: number; panic: boolean; inFlight: number; waiting: number } {
    return { desired: this.#scale.desired, panic: this.#panic, inFlight: this.#window.level, waiting: this.#waiters.length };
  }

  /**
   * A slot on a ready instance right now, or undefined: the warm path, with no promise
   * and no abort signal to make. The caller ends it as an acquire()d one.
   */
  tryAcquire(): Instance | undefined {
    if (this.#retired) return undefined;
    const free = this.#pick();
    if (!free) return undefined;
    free.busy++;
    this.#account(free);
    this.invocations++;
    this.#observe(true);
    return free;
  }

  /** Takes one slot; the caller must end it with an invocation (DONE) or release(). */
  acquire(signal?: AbortSignal): Promise<Instance> {
    if (this.#retired)
      return Promise.reject(new NimbusError('NIMBUS_SHUTTING_DOWN', `function "${this.spec.name}" version ${this.spec.version} is being replaced`));
    const free = this.tryAcquire();
    if (free) return Promise.resolve(free);
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
          this.#observe(false);
          reject(signal.reason);
        }
      });
      this.#observe(true);
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
    while (!this.#retired && this.size < this.spec.scale.min) if (!this.#startOne()) break;
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

  /**
   * One autoscaler decision: start instances up to the desired count, stop idle ones
   * above it (newest first, so load stays on the oldest). Returns whether the pool
   * still needs decisions.
   */
  scaleTick(now: number): boolean {
    if (this.#retired) return false;
    let ready = 0;
    for (const i of this.#instances) if (i.state === 'ready') ready++;
    const idleLongEnough = this.#window.level === 0 && now - this.#lastRequestAt >= this.spec.scale.idleTimeoutMs;
    const decision = decideScale(
      this.#policy,
      {
        now,
        ready,
        stableAverage: this.#window.average(this.#policy.stableWindowMs, now),
        panicAverage: this.#window.average(this.#policy.panicWindowMs, now),
        lastRequestAt: this.#lastRequestAt,
      },
      this.#scale,
    );
    // Nothing in flight and no request for idleTimeout: down to min, whatever the windows remember.
    this.#scale = idleLongEnough ? { ...INITIAL_SCALE_STATE, desired: this.spec.scale.min } : decision.state;
    this.#panic = idleLongEnough ? false : decision.panic;
    const desired = this.#scale.desired;
    // Ahead of demand only while requests are in flight, and without pushing other
    // functions' idle instances out: the panic hold keeps instances, it does not restart them.
    if (this.#window.level > 0) while (this.size < desired) if (!this.#startOne(false)) break;
    let excess = ready - desired;
    if (excess > 0) {
      for (const instance of [...this.#instances].reverse()) {
        if (excess <= 0) break;
        if (instance.state === 'ready' && instance.busy === 0) {
          excess--;
          void this.#stop(instance);
        }
      }
    }
    return this.#instances.size > this.spec.scale.min || this.#starting > 0 || this.#waiters.length > 0 || this.#window.level > 0 || this.#panic;
  }

  /** BudgetMember: stops the idle instance that served last longest ago, above min. */
  evictIdle(): boolean {
    if (this.#instances.size <= this.spec.scale.min) return false;
    const victim = this.#oldestIdle();
    if (!victim) return false;
    void this.#stop(victim);
    return true;
  }

  idleSince(): number {
    if (this.#instances.size <= this.spec.scale.min) return Number.POSITIVE_INFINITY;
    return this.#oldestIdle()?.lastActive ?? Number.POSITIVE_INFINITY;
  }

  budgetFreed(): void {
    this.#scaleUp();
    this.ensureMin();
  }

  /** Brings the running total of busy slots up to date with this instance's count (O(1) per request). */
  #account(instance: Instance): void {
    const before = this.#seenBusy.get(instance) ?? 0;
    this.#busyTotal += instance.busy - before;
    this.#seenBusy.set(instance, instance.busy);
  }

  /** An instance left the pool: its slots leave the total. */
  #forget(instance: Instance): void {
    this.#busyTotal -= this.#seenBusy.get(instance) ?? 0;
    this.#seenBusy.delete(instance);
  }

  #oldestIdle(): Instance | undefined {
    let oldest: Instance | undefined;
    for (const i of this.#instances) if (i.state === 'ready' && i.busy === 0 && (!oldest || i.lastActive < oldest.lastActive)) oldest = i;
    return oldest;
  }

  /** The level of requests in flight (busy slots and waiters) changed; a request may have arrived. */
  #observe(arrived: boolean): void {
    const now = this.#now();
    this.#window.set(this.#busyTotal + this.#waiters.length, now);
    if (arrived) {
      this.#lastRequestAt = now;
      this.#loop.activate(this);
    }
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
      this.#account(instance);
      (this.#waiters.shift() as Waiter).resolve(instance);
    }
  }

  #scaleUp(): void {
    const { concurrency, max } = this.spec.scale;
    const uncovered = this.#waiters.length - this.#starting * concurrency;
    let needed = Math.ceil(uncovered / concurrency);
    while (needed-- > 0 && this.size < max) if (!this.#startOne()) break;
  }

  /**
   * Starts one instance; false when the platform-wide limit holds it back. A start that
   * requests or scale.min need (`evict`) may push out another function's idle instance
   * and is retried when room frees up.
   */
  #startOne(evict = true): boolean {
    if (this.#retired || (this.#budget && !this.#budget.take(this, evict))) return false;
    this.#starting++;
    this.coldStarts++;
    this.#onStart();
    let counted: Instance | undefined;
    void this.#warm
      .take(this.#shape)
      .then(async (instance) => {
        counted = instance;
        this.#counted.add(instance);
        void instance.exited.then(() => this.#uncount(instance));
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
            this.#checkEmpty();
            return;
          }
          instance.lastActive = this.#now();
          this.#instances.add(instance);
          instance.onSlotFree = (i) => this.#slotFreed(i);
          instance.onExit = (i) => this.#exited(i);
          this.#dispatch();
          this.#scaleUp();
          this.#loop.activate(this);
        },
        (err: unknown) => {
          this.#starting--;
          // No instance came to be: its budget unit goes back now.
          if (!counted) this.#budget?.give();
          // Waiters that no running or pending instance will serve get this start's
          // error (the function's own text) rather than waiting for their timeout.
          const keep = this.#instances.size > 0 ? this.#waiters.length : this.#starting * this.spec.scale.concurrency;
          for (const w of this.#waiters.splice(keep)) w.reject(err);
          this.#observe(false);
          this.#checkEmpty();
        },
      );
    return true;
  }

  #uncount(instance: Instance): void {
    if (this.#counted.delete(instance)) this.#budget?.give();
  }

  #slotFreed(instance: Instance): void {
    instance.lastActive = this.#now();
    this.#account(instance);
    this.#dispatch();
    this.#observe(false);
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
    // Another function waits for room at the platform limit: an idle instance above min gives it.
    if (instance.busy === 0 && instance.state === 'ready' && this.#instances.size > this.spec.scale.min && this.#budget?.wanted(this))
      void this.#stop(instance);
  }

  async #stop(instance: Instance): Promise<void> {
    this.#instances.delete(instance);
    this.#forget(instance);
    await instance.dispose();
    this.#checkEmpty();
  }

  #exited(instance: Instance): void {
    // Its budget unit goes back first, so that a replacement does not push out another function's instance.
    this.#uncount(instance);
    this.#instances.delete(instance);
    this.#forget(instance);
    if (this.#retired) {
      this.#checkEmpty();
      return;
    }
    this.#observe(false);
    this.#dispatch();
    this.#scaleUp();
    this.ensureMin();
  }

  #checkEmpty(): void {
    if (this.#retired && this.#instances.size === 0 && this.#starting === 0) {
      this.#budget?.leave(this);
      this.onEmpty();
    }
  }
}
