import { WARM_POOL_REFILL_DELAY_MS as REFILL_DELAY_MS, WARM_POOL_MAX_SIZE } from '../config/defaults.js';
import type { Instance } from './instance.js';
import { type InstanceLauncher, type InstanceShape, sameShape } from './launcher.js';

/** Cold starts are counted per second over this long to size the pool. */
const DEMAND_WINDOW_S = 60;

/**
 * Pre-started generic instances of the default shape (memory, /tmp, process limit;
 * Fission's idea, done locally): a cold start takes one and only has to LOAD the
 * bundle. Taken instances are replaced in the background. Other shapes start an
 * instance on demand.
 *
 * The pool sizes itself from recent demand: it holds as many instances as the most
 * cold starts seen in one second over the last minute, at least its base size and at
 * most `maxSize`; when demand falls away, the extra instances stop.
 */
export class WarmPool {
  readonly #launcher: InstanceLauncher;
  readonly #base: number;
  readonly #max: number;
  readonly #shape: InstanceShape;
  readonly #idle: Instance[] = [];
  /** Cold starts per second (epoch second → count), for the last DEMAND_WINDOW_S seconds. */
  readonly #demand = new Map<number, number>();
  #shrinkTimer: NodeJS.Timeout | undefined;
  #filling = 0;
  #closed = false;

  readonly #now: () => number;

  constructor(launcher: InstanceLauncher, size: number, shape: InstanceShape, opts: { maxSize?: number; now?: () => number } = {}) {
    const maxSize = opts.maxSize ?? Math.max(size, WARM_POOL_MAX_SIZE);
    this.#now = opts.now ?? Date.now;
    this.#launcher = launcher;
    this.#base = size;
    this.#max = size === 0 ? 0 : maxSize;
    this.#shape = shape;
  }

  get idleCount(): number {
    return this.#idle.length;
  }

  /** How many pre-started instances the pool aims to hold now. */
  get target(): number {
    const since = Math.floor(this.#now() / 1000) - DEMAND_WINDOW_S;
    let peak = 0;
    for (const [second, n] of this.#demand) {
      if (second <= since) this.#demand.delete(second);
      else peak = Math.max(peak, n);
    }
    return Math.min(this.#max, Math.max(this.#base, peak));
  }

  fill(): void {
    const target = this.target;
    while (!this.#closed && this.#idle.length + this.#filling < target) {
      this.#filling++;
      this.#launcher.start(this.#shape).then(
        (instance) => {
          this.#filling--;
          if (this.#closed) {
            void instance.dispose();
            return;
          }
          instance.onExit = (gone) => {
            const i = this.#idle.indexOf(gone);
            if (i !== -1) this.#idle.splice(i, 1);
          };
          this.#idle.push(instance);
        },
        (err: unknown) => {
          this.#filling--;
          console.error('nimbus: could not pre-start a generic instance:', err);
        },
      );
    }
  }

  /** A generic instance of this shape: a pre-started one when there is one. `demand: false`: not a cold start (a deploy's check), so it does not size the pool. */
  async take(shape: InstanceShape, opts: { demand?: boolean } = {}): Promise<Instance> {
    if (sameShape(shape, this.#shape) && this.#max > 0) {
      if (opts.demand !== false) {
        const second = Math.floor(this.#now() / 1000);
        this.#demand.set(second, (this.#demand.get(second) ?? 0) + 1);
        this.#scheduleShrink();
      }
      const instance = this.#idle.shift();
      // Refill a moment later: starting a Node process takes a core for tens of
      // milliseconds, which would otherwise slow the cold start it is replacing.
      setTimeout(() => this.fill(), REFILL_DELAY_MS).unref();
      if (instance) {
        instance.onExit = () => {};
        return instance;
      }
    }
    return this.#launcher.start(shape);
  }

  /** Once the demand that grew the pool has left the window, stop what is above the target. */
  #scheduleShrink(): void {
    clearTimeout(this.#shrinkTimer);
    this.#shrinkTimer = setTimeout(() => this.shrink(), (DEMAND_WINDOW_S + 1) * 1000);
    this.#shrinkTimer.unref();
  }

  /** Stops the pre-started instances above the target (the timer calls it; tests may too). */
  shrink(): void {
    const extra = this.#idle.length - this.target;
    if (extra > 0) for (const instance of this.#idle.splice(this.#idle.length - extra)) void instance.dispose();
  }

  async dispose(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#shrinkTimer);
    await Promise.all(this.#idle.splice(0).map((i) => i.dispose()));
  }
}
