/**
 * How many instances a function should have, decided as Knative's autoscaler (KPA)
 * does: from the average number of requests in flight (running or waiting) over a
 * stable window and over a short panic window, against a target per instance that is
 * the function's concurrency times a target utilisation. The decision is a pure
 * function of the policy, the observations and the clock; the pool applies it.
 *
 *   stable mode   desired = ceil(stable average / target), scale down at most
 *                 `maxScaleDownRate`× per decision;
 *   panic mode    entered when the panic-window average asks for `panicThreshold`×
 *                 the ready instances; desired follows the panic window up and
 *                 never goes down, until a whole stable window passes below the
 *                 threshold;
 *   zero          only after no request arrived for the scale-to-zero grace period.
 *
 * Scale-up is at most `maxScaleUpRate`× the ready instances per decision (from
 * zero counts as one), and the result is kept within [min, max].
 */

export interface ScalePolicy {
  min: number;
  max: number;
  /** Requests one instance serves at once (a hard limit). */
  concurrency: number;
  /** Fraction of `concurrency` the autoscaler aims for, leaving headroom for bursts. */
  utilization: number;
  stableWindowMs: number;
  panicWindowMs: number;
  /** Panic when the panic window wants this many times the ready instances. */
  panicThreshold: number;
  maxScaleUpRate: number;
  maxScaleDownRate: number;
  /** No request for this long before the last instance goes. */
  scaleToZeroGraceMs: number;
}

export interface ScaleObservation {
  now: number;
  /** Instances serving (not starting, not draining). */
  ready: number;
  /** Average requests in flight over the stable and the panic windows. */
  stableAverage: number;
  panicAverage: number;
  /** When the last request arrived (0: never). */
  lastRequestAt: number;
}

/** What the autoscaler remembers between decisions. */
export interface ScaleState {
  /** When panic mode began; undefined when not panicking. */
  panicSince: number | undefined;
  /** The last time the panic window was over the threshold. */
  lastOverThreshold: number | undefined;
  /** The last decision, which panic mode never goes below. */
  desired: number;
}

export interface ScaleDecision {
  desired: number;
  state: ScaleState;
  panic: boolean;
}

export const INITIAL_SCALE_STATE: ScaleState = Object.freeze({ panicSince: undefined, lastOverThreshold: undefined, desired: 0 });

/** Knative's defaults, with the stable window and scale-to-zero grace taken per function. */
export const DEFAULT_UTILIZATION = 0.7;
export const PANIC_WINDOW_FRACTION = 0.1;
export const PANIC_THRESHOLD = 2;
export const MAX_SCALE_UP_RATE = 1000;
export const MAX_SCALE_DOWN_RATE = 2;

export function decideScale(policy: ScalePolicy, obs: ScaleObservation, prev: ScaleState): ScaleDecision {
  const target = Math.max(0.01, policy.concurrency * policy.utilization);
  const ready = obs.ready;
  let stable = Math.ceil(obs.stableAverage / target - 1e-9);
  let panicWant = Math.ceil(obs.panicAverage / target - 1e-9);

  // Rate limits relative to what is serving now.
  const maxUp = Math.ceil(Math.max(1, ready) * policy.maxScaleUpRate);
  const maxDown = Math.floor(ready / policy.maxScaleDownRate);
  stable = Math.min(maxUp, Math.max(maxDown, stable));
  panicWant = Math.min(maxUp, Math.max(maxDown, panicWant));

  // As Knative: no ready instance counts as one, so a single request to a function at zero is no panic.
  const over = obs.panicAverage / (Math.max(1, ready) * target) >= policy.panicThreshold;
  const lastOverThreshold = over ? obs.now : prev.lastOverThreshold;
  let panicSince = prev.panicSince;
  if (over && panicSince === undefined) panicSince = obs.now;
  else if (!over && panicSince !== undefined && lastOverThreshold !== undefined && obs.now - lastOverThreshold >= policy.stableWindowMs) {
    panicSince = undefined;
  }

  let desired = panicSince !== undefined ? Math.max(panicWant, prev.desired, stable) : stable;
  // To zero only after the grace period without requests; until then keep one.
  if (desired === 0 && obs.lastRequestAt > 0 && obs.now - obs.lastRequestAt < policy.scaleToZeroGraceMs) desired = ready > 0 ? 1 : 0;
  desired = Math.min(policy.max, Math.max(policy.min, desired));
  return { desired, state: { panicSince, lastOverThreshold, desired }, panic: panicSince !== undefined };
}

/**
 * Time-weighted average of a level (requests in flight) in one-second buckets, so a
 * burst shorter than a decision interval still counts. The clock is passed in.
 */
export class ConcurrencyWindow {
  readonly #bucketMs: number;
  readonly #buckets: Float64Array;
  /** Index (time / bucketMs) of the newest bucket written. */
  #head = 0;
  #level = 0;
  /** When the level last changed; undefined until the first set(). */
  #since: number | undefined;
  /** When the first level was set: the averages cover no time before it. */
  #first = 0;

  constructor(windowMs: number, bucketMs = 1_000) {
    this.#bucketMs = bucketMs;
    // The whole buckets of the window plus the current, partial one.
    this.#buckets = new Float64Array(Math.ceil(windowMs / bucketMs) + 1);
  }

  get level(): number {
    return this.#level;
  }

  /** The level changes (a request arrived or finished) at `now`. */
  set(level: number, now: number): void {
    this.#accumulate(now);
    this.#level = level;
  }

  /**
   * Average level over the last `windowMs` (at most the window kept): the current,
   * partial bucket and the whole ones before it, over the time actually observed.
   */
  average(windowMs: number, now: number): number {
    this.#accumulate(now);
    const current = Math.floor(now / this.#bucketMs);
    const whole = Math.min(this.#buckets.length - 1, Math.floor(windowMs / this.#bucketMs));
    let sum = 0;
    for (let i = 0; i <= whole; i++) sum += this.#buckets[(current - i) % this.#buckets.length];
    const spanMs = Math.min(whole * this.#bucketMs + (now - current * this.#bucketMs), now - this.#first);
    return spanMs > 0 ? sum / spanMs : this.#level;
  }

  /** Adds level × time since the last change into the buckets it spans. */
  #accumulate(now: number): void {
    if (this.#since === undefined) {
      this.#since = now;
      this.#first = now;
      this.#head = Math.floor(now / this.#bucketMs);
      return;
    }
    const size = this.#buckets.length;
    const target = Math.floor(now / this.#bucketMs);
    // Clear buckets that were skipped (or all, after a long quiet spell).
    for (let b = this.#head + 1; b <= target && b - this.#head <= size; b++) this.#buckets[b % size] = 0;
    // Only the buckets still in the window matter, however long ago the last change was.
    let t = Math.max(this.#since, (target - size + 1) * this.#bucketMs);
    while (t < now) {
      const bucket = Math.floor(t / this.#bucketMs);
      const end = Math.min(now, (bucket + 1) * this.#bucketMs);
      if (target - bucket < size) this.#buckets[bucket % size] += this.#level * (end - t);
      t = end;
    }
    this.#since = now;
    this.#head = Math.max(this.#head, target);
  }
}

/** Something the loop decides for: returns false once it needs no more decisions (idle at its min). */
export interface Scalable {
  scaleTick(now: number): boolean;
}

/**
 * Runs the decisions of the pools that have something going on, every interval. A
 * pool joins when a request arrives and leaves once it is idle at its min, and the
 * timer runs only while some pool is active: an idle platform costs no CPU.
 */
export class ScaleLoop {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #active = new Set<Scalable>();
  #timer: NodeJS.Timeout | undefined;

  constructor(intervalMs: number, now: () => number = Date.now) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  get active(): number {
    return this.#active.size;
  }

  activate(pool: Scalable): void {
    this.#active.add(pool);
    if (!this.#timer) {
      this.#timer = setInterval(() => this.tick(), this.#intervalMs);
      this.#timer.unref();
    }
  }

  /** One round of decisions (the timer calls it; tests may too). */
  tick(): void {
    const now = this.#now();
    for (const pool of this.#active) {
      let keep = false;
      try {
        keep = pool.scaleTick(now);
      } catch (err) {
        console.error('nimbus: autoscaler:', err);
      }
      if (!keep) this.#active.delete(pool);
    }
    if (this.#active.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
