import { MAX_QUEUED_EVENTS, RETRY_AFTER_S } from '../config/defaults.js';
import type { CallDeps } from '../gateway/call.js';
import type { FunctionSpec } from '../runtime/function-pool.js';
import { NimbusError } from '../shared/errors.js';
import { Dispatcher, type DispatcherOptions, functionQueue, type InvokeMeta } from './dispatcher.js';
import type { EnqueueResult, Message, Queue } from './queue.js';

export interface EventsOptions extends DispatcherOptions {
  /** Events waiting or running before new ones get 429. */
  maxQueued?: number;
}

export interface AsyncRequest {
  method: string;
  path: string;
  headers: string[];
  body: Buffer;
  sourceIp: string;
  format: 'http' | 'lambda';
  callbackUrl?: string;
  idempotencyKey?: string;
}

/** Maintenance (pruning finished records) runs this often. */
const PRUNE_INTERVAL_MS = 60_000;

/**
 * Everything asynchronous, in front of one durable queue: accepting async invocations
 * (committed before the caller hears 202), showing their records, the dead letters of
 * each function, and the dispatcher that delivers them.
 */
export class Events {
  readonly queue: Queue;
  readonly dispatcher: Dispatcher;
  readonly #maxQueued: number;
  readonly #now: () => number;
  #pruneTimer: NodeJS.Timeout | undefined;

  constructor(queue: Queue, deps: CallDeps, opts: EventsOptions = {}) {
    this.queue = queue;
    this.dispatcher = new Dispatcher(queue, deps, opts);
    this.#maxQueued = opts.maxQueued ?? MAX_QUEUED_EVENTS;
    this.#now = opts.now ?? Date.now;
  }

  async start(): Promise<void> {
    await this.queue.prune(this.#now());
    await this.dispatcher.start();
    this.#pruneTimer = setInterval(() => {
      this.queue.prune(this.#now()).catch((err: unknown) => console.error('nimbus: pruning the event queue failed:', err));
    }, PRUNE_INTERVAL_MS);
    this.#pruneTimer.unref();
  }

  /** Queues an invocation of the function's latest version; resolves once it is on disk. */
  async invokeAsync(spec: FunctionSpec, req: AsyncRequest): Promise<EnqueueResult> {
    if (this.queue.pending() >= this.#maxQueued) {
      throw new NimbusError('NIMBUS_QUEUE_FULL', `${this.queue.pending()} events are waiting; the platform accepts at most ${this.#maxQueued}`, {
        headers: { 'retry-after': String(RETRY_AFTER_S) },
      });
    }
    const now = this.#now();
    const meta: InvokeMeta = {
      kind: 'invoke',
      fn: spec.name,
      method: req.method,
      path: req.path,
      headers: req.headers,
      sourceIp: req.sourceIp,
      format: req.format,
      ...(req.callbackUrl ? { callbackUrl: req.callbackUrl } : {}),
    };
    const [result] = await this.queue.enqueue(
      [
        {
          queue: functionQueue(spec.name),
          meta: meta as unknown as Record<string, unknown>,
          body: req.body,
          maxAttempts: spec.async.retries + 1,
          expiresAt: now + spec.async.maxEventAgeMs,
          idempotencyKey: req.idempotencyKey,
        },
      ],
      now,
    );
    this.dispatcher.wake();
    return result;
  }

  /** An invocation record, or undefined (unknown, or pruned after its retention). */
  async invocation(id: string): Promise<Message | undefined> {
    const m = await this.queue.get(id);
    return m && m.meta.kind === 'invoke' ? m : undefined;
  }

  listDead(fn: string, opts: { limit: number; after?: string }): Promise<Message[]> {
    return this.queue.listDead(functionQueue(fn), opts);
  }

  /** Dead letters back to the queue with the function's current retries and maxEventAge. */
  async redrive(spec: FunctionSpec, ids?: string[]): Promise<number> {
    const now = this.#now();
    const n = await this.queue.redrive(functionQueue(spec.name), ids, spec.async.retries + 1, now + spec.async.maxEventAgeMs, now);
    this.dispatcher.wake();
    return n;
  }

  purgeDead(fn: string, ids?: string[]): Promise<number> {
    return this.queue.purgeDead(functionQueue(fn), ids);
  }

  /** A removed function's events go with it. */
  async removeFunction(fn: string): Promise<void> {
    await this.queue.drop(functionQueue(fn));
  }

  async stop(graceMs: number): Promise<void> {
    clearInterval(this.#pruneTimer);
    await this.dispatcher.stop(graceMs);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
