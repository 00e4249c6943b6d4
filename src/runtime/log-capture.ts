/**
 * An instance's stdout and stderr, cut into lines: each line carries the request id
 * it was written under (the shims mark such lines with RS <id> US), is cut at
 * MAX_LOG_LINE_BYTES, and counts against the instance's log budget (log-budget.ts).
 */
import type { Readable } from 'node:stream';
import { MAX_LOG_LINE_BYTES } from '../config/defaults.js';
import { LogBudget } from './log-budget.js';

export interface LogLine {
  stream: 'stdout' | 'stderr';
  line: string;
  requestId: string | null;
}

/** Ended requests whose late lines (a pipe can be read after the DONE frame) still count as theirs. */
const RECENT_REQUESTS = 256;

export class LogCapture {
  readonly #onLine: (log: LogLine) => void;
  readonly #budget = new LogBudget();
  readonly #active = new Set<string>();
  /** In the order they ended: a Set iterates in insertion order, so the first is the oldest. */
  readonly #recent = new Set<string>();
  /** The last line on stderr: why an instance that died early died. */
  lastStderr = '';
  /** V8 said it ran out of heap. */
  sawHeapOom = false;

  constructor(onLine: (log: LogLine) => void) {
    this.#onLine = onLine;
  }

  requestStarted(requestId: string): void {
    this.#active.add(requestId);
  }

  requestEnded(requestId: string): void {
    this.#active.delete(requestId);
    this.#recent.add(requestId);
    if (this.#recent.size > RECENT_REQUESTS) {
      const oldest = this.#recent.values().next().value as string;
      this.#recent.delete(oldest);
      this.#budget.end(oldest);
    }
  }

  attach(stream: 'stdout' | 'stderr', pipe: Readable | null): void {
    if (!pipe) return;
    pipe.setEncoding('utf8');
    let partial = '';
    pipe.on('data', (chunk: string) => {
      const text = partial + chunk;
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      if (partial.length > MAX_LOG_LINE_BYTES) {
        this.#emit(stream, partial);
        partial = '';
      }
      for (const line of lines) this.#emit(stream, line);
    });
    pipe.on('end', () => {
      if (partial) this.#emit(stream, partial);
      partial = '';
    });
  }

  #emit(stream: 'stdout' | 'stderr', raw: string): void {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    let requestId: string | null = null;
    if (line.charCodeAt(0) === 0x1e) {
      const end = line.indexOf('\x1f');
      if (end > 0) {
        // The function's code can write these marks too: only a request of this instance counts.
        const tag = line.slice(1, end);
        requestId = this.#active.has(tag) || this.#recent.has(tag) ? tag : null;
        line = line.slice(end + 1);
      }
    }
    if (line.length > MAX_LOG_LINE_BYTES) line = `${line.slice(0, MAX_LOG_LINE_BYTES)}… [truncated]`;
    if (stream === 'stderr' && /heap out of memory|Reached heap limit/.test(line)) this.sawHeapOom = true;
    const admitted = this.#budget.admit(requestId, line.length + 1);
    if (admitted === 'drop') return;
    if (admitted === 'marker') line = this.#budget.marker(requestId);
    if (stream === 'stderr') this.lastStderr = line;
    this.#onLine({ stream, line, requestId });
  }
}
