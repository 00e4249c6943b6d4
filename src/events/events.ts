import { randomUUID } from 'node:crypto';
import { MAX_QUEUED_EVENTS, RETRY_AFTER_S } from '../config/defaults.js';
import type { CallDeps } from '../gateway/call.js';
import type { FunctionSpec } from '../runtime/function-pool.js';
import { NimbusError } from '../shared/errors.js';
import { CallbackPolicy } from './callback-policy.js';
import { Dispatcher, type DispatcherOptions, functionQueue, type InvokeMeta } from './dispatcher.js';
import type { BucketSource, EventMeta, ObjectSummary, TopicSource } from './formats.js';
import type { EnqueueResult, Message, NewMessage, Queue } from './queue.js';
import { Scheduler } from './scheduler.js';

/** One message to publish to a topic. */
export interface TopicMessage {
  body: Buffer;
  contentType: string;
}

/** An object change from the bucket store's outbox. */
export interface ObjectChangeEvent {
  /** Unique per change (the outbox id and time), so a relay after a crash cannot queue it twice. */
  key: string;
  bucket: string;
  action: 'created' | 'deleted';
  object: ObjectSummary;
  at: number;
}

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
  readonly scheduler: Scheduler;
  /** Where X-Callback-Url results may go: checked when a request is accepted and again when the callback connects. */
  readonly callbackPolicy: CallbackPolicy;
  readonly #deps: CallDeps;
  readonly #maxQueued: number;
  readonly #now: () => number;
  #pruneTimer: NodeJS.Timeout | undefined;

  constructor(queue: Queue, deps: CallDeps, opts: EventsOptions = {}) {
    this.queue = queue;
    this.callbackPolicy = opts.callbackPolicy ?? new CallbackPolicy();
    this.dispatcher = new Dispatcher(queue, deps, { ...opts, callbackPolicy: this.callbackPolicy });
    this.#deps = deps;
    this.#maxQueued = opts.maxQueued ?? MAX_QUEUED_EVENTS;
    this.#now = opts.now ?? Date.now;
    this.scheduler = new Scheduler(queue, { now: this.#now, onQueued: () => this.dispatcher.wake() });
  }

  async start(): Promise<void> {
    await this.queue.prune(this.#now());
    await this.dispatcher.start();
    await this.scheduler.setFunctions(this.#deps.registry.all());
    await this.scheduler.start();
    this.#pruneTimer = setInterval(() => {
      this.queue.prune(this.#now()).catch((err: unknown) => console.error('nimbus: pruning the event queue failed:', err));
    }, PRUNE_INTERVAL_MS);
    this.#pruneTimer.unref();
  }

  /** Queues an invocation of the function's latest version; resolves once it is on disk. */
  /** Functions were deployed or removed: their schedules may have changed. */
  functionsChanged(): Promise<void> {
    return this.scheduler.setFunctions(this.#deps.registry.all());
  }

  #checkRoom(adding = 1): void {
    if (this.queue.pending() + adding > this.#maxQueued) {
      throw new NimbusError('NIMBUS_QUEUE_FULL', `${this.queue.pending()} events are waiting; the platform accepts at most ${this.#maxQueued}`, {
        headers: { 'retry-after': String(RETRY_AFTER_S) },
      });
    }
  }

  /** The functions subscribed to a topic (triggers.topics), in name order. */
  subscribers(topic: string): FunctionSpec[] {
    return [...this.#deps.registry.all()].filter((s) => s.triggers.topics.some((t) => t.topic === topic)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Publishes messages to a topic: one copy per subscribing function, each on that
   * function's queue (fan-out), all in one durable commit. A topic nobody subscribes
   * to is refused (404) rather than accepted and dropped.
   */
  async publish(topic: string, messages: TopicMessage[], idempotencyKey?: string): Promise<{ ids: string[]; subscribers: string[] }> {
    const subs = this.subscribers(topic);
    if (subs.length === 0) {
      throw new NimbusError('NIMBUS_TOPIC_NOT_FOUND', `no function subscribes to topic "${topic}", so a message would reach nobody`);
    }
    this.#checkRoom(subs.length * messages.length);
    const now = this.#now();
    const ids: string[] = messages.map(() => randomUUID());
    const queued: NewMessage[] = [];
    messages.forEach((m, i) => {
      for (const spec of subs) {
        const source: TopicSource = { type: 'topic', topic, contentType: m.contentType, publishedAt: now };
        const meta: EventMeta & { messageId: string } = { kind: 'event', fn: spec.name, source, messageId: ids[i] };
        queued.push({
          queue: functionQueue(spec.name),
          meta: meta as unknown as Record<string, unknown>,
          body: m.body,
          maxAttempts: spec.async.retries + 1,
          expiresAt: now + spec.async.maxEventAgeMs,
          ...(idempotencyKey !== undefined ? { idempotencyKey: `topic:${topic}:${idempotencyKey}:${i}` } : {}),
        });
      }
    });
    const results = await this.queue.enqueue(queued, now);
    // A repeated publish (same Idempotency-Key) answers with the ids of the first one.
    for (let i = 0; i < ids.length; i++) {
      const first = results[i * subs.length];
      if (!first?.duplicate) continue;
      const earlier = (await this.queue.get(first.id))?.meta.messageId;
      if (typeof earlier === 'string') ids[i] = earlier;
    }
    this.dispatcher.wake();
    return { ids, subscribers: subs.map((s) => s.name) };
  }

  /** Queues an object change for every function whose bucket trigger matches it. */
  async objectChanged(change: ObjectChangeEvent): Promise<number> {
    const now = this.#now();
    const queued: NewMessage[] = [];
    for (const spec of this.#deps.registry.all()) {
      const match = spec.triggers.buckets.some((b) => b.bucket === change.bucket && b.events.includes(change.action) && change.object.key.startsWith(b.prefix));
      if (!match) continue;
      const source: BucketSource = { type: 'bucket', bucket: change.bucket, action: change.action, object: change.object, at: change.at };
      const meta: EventMeta = { kind: 'event', fn: spec.name, source };
      queued.push({
        queue: functionQueue(spec.name),
        meta: meta as unknown as Record<string, unknown>,
        body: Buffer.alloc(0),
        maxAttempts: spec.async.retries + 1,
        expiresAt: now + spec.async.maxEventAgeMs,
        idempotencyKey: `bucket:${change.key}`,
      });
    }
    if (queued.length === 0) return 0;
    await this.queue.enqueue(queued, now);
    this.dispatcher.wake();
    return queued.length;
  }

  async invokeAsync(spec: FunctionSpec, req: AsyncRequest): Promise<EnqueueResult> {
    if (req.callbackUrl !== undefined) this.callbackPolicy.checkUrl(req.callbackUrl);
    this.#checkRoom();
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

  /** The callback message an invocation's record points at (its result's callbackId). */
  async callback(id: string): Promise<Message | undefined> {
    const m = await this.queue.get(id);
    return m && m.meta.kind === 'callback' ? m : undefined;
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
    await this.scheduler.forget(fn);
  }

  async stop(graceMs: number): Promise<void> {
    clearInterval(this.#pruneTimer);
    await this.scheduler.stop();
    await this.dispatcher.stop(graceMs);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
