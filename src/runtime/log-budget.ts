import { MAX_LOG_BYTES_PER_REQUEST, MAX_LOG_BYTES_UNTAGGED_PER_MINUTE } from '../config/defaults.js';

const MINUTE_MS = 60_000;

/**
 * How much log output an instance may write: per request, and per minute outside any
 * request. Past a budget the lines are dropped, after one marker line that says so:
 * the lines before it are all kept, and a function that floods its output costs the
 * platform reading time, never memory.
 */
export class LogBudget {
  readonly #perRequest: number;
  readonly #untaggedPerMinute: number;
  readonly #now: () => number;
  readonly #used = new Map<string, number>();
  #untagged = { minute: 0, used: 0 };

  constructor(opts: { perRequest?: number; untaggedPerMinute?: number; now?: () => number } = {}) {
    this.#perRequest = opts.perRequest ?? MAX_LOG_BYTES_PER_REQUEST;
    this.#untaggedPerMinute = opts.untaggedPerMinute ?? MAX_LOG_BYTES_UNTAGGED_PER_MINUTE;
    this.#now = opts.now ?? Date.now;
  }

  /** Whether a line of `bytes` is kept, replaced by the marker (the first one past the budget), or dropped. */
  admit(requestId: string | null, bytes: number): 'keep' | 'marker' | 'drop' {
    if (requestId === null) {
      const minute = Math.floor(this.#now() / MINUTE_MS);
      if (minute !== this.#untagged.minute) this.#untagged = { minute, used: 0 };
      return this.#charge(this.#untagged.used, bytes, this.#untaggedPerMinute, (used) => {
        this.#untagged.used = used;
      });
    }
    return this.#charge(this.#used.get(requestId) ?? 0, bytes, this.#perRequest, (used) => this.#used.set(requestId, used));
  }

  /** The request is over: forget its count. */
  end(requestId: string): void {
    this.#used.delete(requestId);
  }

  /** The marker line that stands for what was dropped. */
  marker(requestId: string | null): string {
    return requestId === null
      ? `[nimbus] this instance wrote more than ${this.#untaggedPerMinute} bytes of logs outside any request this minute: the rest of the minute's is dropped`
      : `[nimbus] this request wrote more than ${this.#perRequest} bytes of logs: the rest of its output is dropped`;
  }

  #charge(used: number, bytes: number, limit: number, set: (used: number) => void): 'keep' | 'marker' | 'drop' {
    if (used > limit) return 'drop';
    const next = used + bytes;
    // One past the limit marks the spot: the marker is written once.
    set(next > limit ? limit + 1 : next);
    return next > limit ? 'marker' : 'keep';
  }
}
