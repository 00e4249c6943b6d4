import type { RequestHead, ResponseHead } from '../../runtime/protocol/frames.js';

/** What a style adapter gets for one request, inside the instance. */
export interface Invocation {
  readonly head: RequestHead;
  readonly signal: AbortSignal;
  /** The request body as it arrives, chunk by chunk. */
  readonly body: AsyncIterable<Buffer>;
  readonly hasBody: boolean;
  /** The whole body, for styles whose events carry it as a string. */
  readBody(): Promise<Buffer>;
  waitUntil(promise: Promise<unknown>): void;
}

/** What a style adapter returns: the response head and a body to stream. */
export interface InvocationResult {
  head: ResponseHead;
  body: Buffer | AsyncIterable<Uint8Array> | null;
}

export interface LoadedFunction {
  style: string;
  /** Which entry points the module has besides HTTP (Workers: fetch, scheduled, queue; Azure: timer). */
  handles?: string[];
  /** Schedules the code itself declares (Azure app.timer), as { name, schedule }. */
  timers?: { name: string; schedule: string }[];
  invoke(inv: Invocation): Promise<InvocationResult>;
}

export interface FunctionInfo {
  functionName: string;
  version: number;
  memoryMB: number;
  env: Readonly<Record<string, string>>;
  /** API Gateway payload format for Lambda-style HTTP events. */
  payloadFormat?: '1.0' | '2.0';
  /** env.<NAME> objects for the manifest's bindings (KV, buckets, topics). */
  bindings?: Record<string, unknown>;
}

/** An error the shim reports with a stable code instead of the generic function error. */
export class ShimError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A pushed stream of body chunks with a promise for the whole. */
export class BodyQueue implements AsyncIterable<Buffer> {
  #chunks: Buffer[] = [];
  #done = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  #consumed = false;

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#notify();
  }

  end(): void {
    this.#done = true;
    this.#notify();
  }

  fail(error: Error): void {
    this.#error = error;
    this.#done = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.#consumed) throw new Error('request body already read');
    this.#consumed = true;
    for (;;) {
      if (this.#chunks.length > 0) {
        yield this.#chunks.shift() as Buffer;
        continue;
      }
      if (this.#error) throw this.#error;
      if (this.#done) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  async readAll(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this) parts.push(chunk);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }
}

/** Flat rawHeaders → list of pairs, names lower-cased. */
export function headerPairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i].toLowerCase(), raw[i + 1]]);
  return out;
}

const TEXT_TYPES = /^(text\/|application\/(json|xml|javascript|x-www-form-urlencoded|[a-z0-9.+-]*\+(json|xml))|multipart\/form-data)/i;

export function isTextContentType(contentType: string | undefined): boolean {
  return contentType !== undefined && TEXT_TYPES.test(contentType);
}
