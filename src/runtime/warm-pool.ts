import { WARM_POOL_REFILL_DELAY_MS as REFILL_DELAY_MS } from '../config/defaults.js';
import type { Instance } from './instance.js';
import type { InstanceLauncher } from './launcher.js';

/**
 * Pre-started generic instances for the default memory size (Fission's idea, done
 * locally): a cold start takes one and only has to LOAD the bundle. Taken instances
 * are replaced in the background. Other memory sizes start a process on demand.
 */
export class WarmPool {
  readonly #launcher: InstanceLauncher;
  readonly #size: number;
  readonly #memoryMB: number;
  readonly #idle: Instance[] = [];
  #filling = 0;
  #closed = false;

  constructor(launcher: InstanceLauncher, size: number, memoryMB: number) {
    this.#launcher = launcher;
    this.#size = size;
    this.#memoryMB = memoryMB;
  }

  get idleCount(): number {
    return this.#idle.length;
  }

  fill(): void {
    while (!this.#closed && this.#idle.length + this.#filling < this.#size) {
      this.#filling++;
      this.#launcher.start(this.#memoryMB).then(
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

  /** A generic instance for this memory size: a pre-started one when there is one. */
  async take(memoryMB: number): Promise<Instance> {
    if (memoryMB === this.#memoryMB) {
      const instance = this.#idle.shift();
      // Refill a moment later: starting a Node process takes a core for tens of
      // milliseconds, which would otherwise slow the cold start it is replacing.
      setTimeout(() => this.fill(), REFILL_DELAY_MS).unref();
      if (instance) {
        instance.onExit = () => {};
        return instance;
      }
    }
    return this.#launcher.start(memoryMB);
  }

  async dispose(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#idle.splice(0).map((i) => i.dispose()));
  }
}
