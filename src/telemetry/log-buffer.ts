import { EventEmitter } from 'node:events';
import { LOG_FLUSH_INTERVAL_MS, LOG_RETENTION_LINES_PER_FUNCTION } from '../config/defaults.js';
import type { LogEntry, Store } from '../store/store.js';

const PRUNE_EVERY_FLUSHES = 600;

/**
 * Function log lines, written to the store in batches off the request path. Followers
 * (`nimbus logs -f`) get each batch as soon as it is stored, with its ids.
 */
export class LogBuffer {
  readonly #store: Store;
  readonly #pending: LogEntry[] = [];
  readonly #events = new EventEmitter();
  /** Armed by the first line after a flush: with no logs there is no timer (an idle platform does no work). */
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #flushes = 0;

  constructor(store: Store) {
    this.#store = store;
    this.#events.setMaxListeners(0);
  }

  add(entry: LogEntry): void {
    this.#pending.push(entry);
    if (this.#timer === undefined && !this.#closed) {
      this.#timer = setTimeout(() => this.flush(), LOG_FLUSH_INTERVAL_MS);
      this.#timer.unref();
    }
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return;
    const batch = this.#pending.splice(0);
    try {
      this.#store.appendLogs(batch);
    } catch (err) {
      console.error('nimbus: could not store function logs:', err);
      return;
    }
    const byName = new Map<string, LogEntry[]>();
    for (const e of batch) {
      const list = byName.get(e.name);
      if (list) list.push(e);
      else byName.set(e.name, [e]);
    }
    for (const [name, entries] of byName) this.#events.emit(name, entries);
    if (++this.#flushes % PRUNE_EVERY_FLUSHES === 0) this.#store.pruneLogs(LOG_RETENTION_LINES_PER_FUNCTION);
  }

  /** Calls back with each stored batch of this function's lines; returns the unsubscribe. */
  follow(name: string, listener: (entries: LogEntry[]) => void): () => void {
    this.#events.on(name, listener);
    return () => this.#events.off(name, listener);
  }

  close(): void {
    this.#closed = true;
    this.flush();
  }
}
