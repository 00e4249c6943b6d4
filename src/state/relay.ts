import type { Events } from '../events/events.js';
import type { StateStore } from './state-store.js';

const BATCH = 100;
const RETRY_MS = 1_000;

/**
 * Moves object changes from the bucket store's outbox to the event queue (one event per
 * watching function), then deletes them from the outbox. The change and its outbox row
 * commit together, and the queue deduplicates by the change's key, so a crash at any
 * point neither loses a change nor queues it twice. Runs at start (changes a crash left
 * behind) and after every change.
 */
export class ChangeRelay {
  readonly #state: StateStore;
  readonly #events: Events;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(state: StateStore, events: Events) {
    this.#state = state;
    this.#events = events;
  }

  kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#run().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.kick();
      }
    });
  }

  async #run(): Promise<void> {
    try {
      for (;;) {
        const changes = this.#state.pendingChanges(BATCH);
        if (changes.length === 0 || this.#stopped) return;
        for (const c of changes) {
          const { bucket, key, size, etag, contentType, uploadedAt } = c.object;
          await this.#events.objectChanged({
            key: `${c.id}:${c.at}`,
            bucket,
            action: c.action,
            object: { key, size, etag, contentType, uploadedAt },
            at: c.at,
          });
        }
        this.#state.ackChanges(changes.map((c) => c.id));
      }
    } catch (err) {
      if (this.#stopped) return;
      console.error('nimbus: relaying bucket changes failed (will retry):', err);
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.kick(), RETRY_MS);
      this.#timer.unref();
    }
  }

  /** Lets a relay under way finish (what it did not ack is relayed after the restart). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}
