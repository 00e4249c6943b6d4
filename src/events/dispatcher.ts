import {
  DEFAULT_TOPIC_BATCH_SIZE,
  MAX_DELIVERIES_IN_FLIGHT,
  MAX_RESULT_BYTES,
  MAX_TIMEOUT_MS,
  RETRY_BASE_DELAY_MS,
  RETRY_MAX_DELAY_MS,
} from '../config/defaults.js';
import { type BufferedRequest, type CallDeps, callFunction } from '../gateway/call.js';
import { requestFor as lambdaRequest } from '../gateway/lambda-request.js';
import { type NimbusError, toNimbusError } from '../shared/errors.js';
import { judge, retryDelay } from './backoff.js';
import { CallbackPolicy } from './callback-policy.js';
import { type CallbackMeta, callbackMessage, postCallback } from './callbacks.js';
import { canBatch, type EventDelivery, type EventMeta, eventDelivery, type Settlement } from './formats.js';
import type { Lease, NewMessage, Queue } from './queue.js';

/** An async invocation of a function, as queued (queue "fn:<name>"). */
export interface InvokeMeta {
  kind: 'invoke';
  fn: string;
  method: string;
  path: string;
  /** Flat name/value list, as in the protocol's REQ_HEAD. */
  headers: string[];
  sourceIp: string;
  /** http: an HTTP request for the function; lambda: a Lambda Event invoke's payload. */
  format: 'http' | 'lambda';
  callbackUrl?: string;
}

export interface DispatcherOptions {
  /** Where callbacks may go (default: public addresses only). */
  callbackPolicy?: CallbackPolicy;
  retryBaseMs?: number;
  retryMaxMs?: number;
  maxInFlight?: number;
  /** The clock and the dice, injectable for tests. */
  now?: () => number;
  random?: () => number;
}

/** A delivery's lease outlives any function timeout; a crashed platform recovers its leases at start instead. */
const LEASE_MS = MAX_TIMEOUT_MS + 60_000;
/** With nothing due, look again at least this often (a redrive or another writer may add work). */
const IDLE_POLL_MS = 1_000;

export const functionQueue = (name: string) => `fn:${name}`;

/**
 * Takes due messages off the queue and delivers them: invocations to their function
 * (through the same pools as the gateway), results to callback URLs. Each outcome is
 * judged (backoff.ts): success and 4xx complete the message, anything else retries with
 * exponential backoff and jitter until the attempts or the event's age run out, and then
 * the message is dead-lettered. Callbacks are queued in the same commit as the outcome.
 */
export class Dispatcher {
  readonly #queue: Queue;
  readonly #deps: CallDeps;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #maxInFlight: number;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #callbackPolicy: CallbackPolicy;
  readonly #inFlight = new Set<Promise<void>>();
  /** Messages leased and not yet settled (a batch is one delivery of several). */
  #leased = 0;
  #timer: NodeJS.Timeout | undefined;
  #pumping = false;
  #again = false;
  #wakeScheduled = false;
  #stopped = true;

  constructor(queue: Queue, deps: CallDeps, opts: DispatcherOptions = {}) {
    this.#queue = queue;
    this.#deps = deps;
    this.#retryBaseMs = opts.retryBaseMs ?? RETRY_BASE_DELAY_MS;
    this.#retryMaxMs = opts.retryMaxMs ?? RETRY_MAX_DELAY_MS;
    this.#maxInFlight = opts.maxInFlight ?? MAX_DELIVERIES_IN_FLIGHT;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#callbackPolicy = opts.callbackPolicy ?? new CallbackPolicy();
  }

  get inFlight(): number {
    return this.#leased;
  }

  /** Deliveries a previous run left running are due again (at least once), then the loop starts. */
  async start(): Promise<void> {
    const recovered = await this.#queue.recover(this.#now());
    if (recovered > 0) console.error(`nimbus: ${recovered} event${recovered === 1 ? '' : 's'} interrupted by the last shutdown will be delivered again`);
    this.#stopped = false;
    this.wake();
  }

  /** Something may be due: look soon (wakes in the same turn share one lease). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    setImmediate(() => {
      this.#wakeScheduled = false;
      if (this.#pumping) this.#again = true;
      else void this.#pump();
    });
  }

  /** No new deliveries; waits up to graceMs for running ones (the rest are redelivered after the restart). */
  async stop(graceMs: number): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.#inFlight]), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      do {
        this.#again = false;
        while (!this.#stopped && this.#leased < this.#maxInFlight) {
          const wanted = this.#maxInFlight - this.#leased;
          const leases = await this.#queue.lease(wanted, LEASE_MS, this.#now());
          for (const group of this.#batches(leases)) this.#track(group);
          if (leases.length < wanted) break;
        }
      } while (this.#again && !this.#stopped);
      if (!this.#stopped) await this.#armTimer();
    } catch (err) {
      if (!this.#stopped) {
        console.error('nimbus: event dispatcher:', err);
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => this.wake(), IDLE_POLL_MS);
        this.#timer.unref();
      }
    } finally {
      this.#pumping = false;
    }
  }

  async #armTimer(): Promise<void> {
    const next = await this.#queue.nextAvailableAt();
    clearTimeout(this.#timer);
    // Nothing queued or leased: every enqueue wakes the dispatcher, so an idle platform needs no timer.
    if (next === undefined && this.#queue.pending() === 0) return;
    const wait = next === undefined ? IDLE_POLL_MS : Math.min(IDLE_POLL_MS, Math.max(0, next - this.#now()));
    this.#timer = setTimeout(() => this.wake(), wait);
    this.#timer.unref();
  }

  /**
   * Topic messages and bucket changes for the same function and source travel together
   * (up to the subscription's batchSize) when its style takes batches: a Workers queue()
   * batch or an SQS-shaped Lambda event. A batch is what is due when the dispatcher
   * looks; it does not wait for one to fill.
   */
  #batches(leases: Lease[]): Lease[][] {
    const out: Lease[][] = [];
    const open = new Map<string, { leases: Lease[]; max: number }>();
    for (const lease of leases) {
      const meta = lease.message.meta as unknown as InvokeMeta | CallbackMeta | EventMeta;
      const spec = meta.kind === 'event' ? this.#deps.registry.spec(meta.fn) : undefined;
      if (meta.kind !== 'event' || meta.source.type === 'cron' || !spec || !canBatch(spec.style, meta.source.type)) {
        out.push([lease]);
        continue;
      }
      const source = meta.source;
      const key = `${meta.fn}\0${source.type}\0${source.type === 'topic' ? source.topic : source.bucket}`;
      let batch = open.get(key);
      if (!batch) {
        const max = source.type === 'topic' ? (spec.triggers.topics.find((t) => t.topic === source.topic)?.batchSize ?? 1) : DEFAULT_TOPIC_BATCH_SIZE;
        batch = { leases: [], max };
        open.set(key, batch);
        out.push(batch.leases);
      }
      batch.leases.push(lease);
      if (batch.leases.length >= batch.max) open.delete(key);
    }
    return out;
  }

  #track(leases: Lease[]): void {
    this.#leased += leases.length;
    const delivery = this.#deliver(leases).catch((err: unknown) => {
      // Settling failed (the store is closing): the lease stays, and the restart redelivers.
      if (!this.#stopped) console.error('nimbus: could not settle event', leases[0].message.id, err);
    });
    this.#inFlight.add(delivery);
    void delivery.finally(() => {
      this.#inFlight.delete(delivery);
      this.#leased -= leases.length;
      this.wake();
    });
  }

  async #deliver(leases: Lease[]): Promise<void> {
    const meta = leases[0].message.meta as unknown as InvokeMeta | CallbackMeta | EventMeta;
    if (meta.kind === 'callback') return this.#deliverCallback(leases[0], meta);
    if (meta.kind === 'event') return this.#deliverEvents(leases, meta.fn);
    return this.#deliverInvoke(leases[0], meta);
  }

  /** Trigger events (one, or a batch for one function) in the shape the function's style expects. */
  async #deliverEvents(leases: Lease[], fn: string): Promise<void> {
    const started = this.#now();
    const spec = this.#deps.registry.spec(fn);
    if (!spec) {
      const result = { error: { code: 'NIMBUS_FUNCTION_NOT_FOUND', message: `function "${fn}" does not exist any more` } };
      await Promise.all(leases.map((l) => this.#queue.complete(l, { status: 'failed', result }, [], started)));
      return;
    }
    const live: Lease[] = [];
    const settled: Promise<void>[] = [];
    // Settlements start before the function is called: each is marked handled now, and
    // awaited (its error surfaced) at the end.
    const settle = (p: Promise<void>) => {
      p.catch(() => {});
      settled.push(p);
    };
    for (const l of leases) {
      if (started < l.message.expiresAt) live.push(l);
      else
        settle(
          this.#queue.deadLetter(l, `the event is older than the function's maxEventAge; last error: ${l.message.lastError ?? 'none'}`, undefined, [], started),
        );
    }
    if (live.length > 0) {
      let delivery: EventDelivery | undefined;
      let outcome: { status: number; headers: [string, string][]; body: Buffer } | { error: NimbusError };
      try {
        const res = await callFunction(this.#deps, spec, (style) => {
          delivery = eventDelivery(
            style,
            live.map((l) => l.message),
          );
          return delivery.request;
        });
        outcome = { status: res.head.status, headers: res.head.headers, body: res.body };
      } catch (err) {
        outcome = { error: toNimbusError(err) };
      }
      const now = this.#now();
      const verdict = judge(outcome);
      const settlements: Settlement[] =
        'error' in outcome || !delivery
          ? live.map(() => ({
              ok: false,
              final: verdict === 'failed',
              error: 'error' in outcome ? `${outcome.error.code}: ${outcome.error.message}` : 'no delivery',
            }))
          : delivery.settle({ head: { status: outcome.status, headers: outcome.headers }, body: outcome.body });
      live.forEach((l, i) => {
        const record = recordOf(outcome, now - started, l.message.attempts);
        const s = settlements[i];
        if (s.ok) settle(this.#queue.complete(l, { status: 'succeeded', result: record }, [], now));
        else if (s.final) settle(this.#queue.complete(l, { status: 'failed', result: { ...record, reason: s.error } }, [], now));
        else settle(this.#retryOrDeadLetter(l, s.error, now, record, [], s.delayMs));
      });
    }
    await Promise.all(settled);
  }

  async #deliverInvoke(lease: Lease, meta: InvokeMeta): Promise<void> {
    const m = lease.message;
    const started = this.#now();
    const spec = this.#deps.registry.spec(meta.fn);
    if (!spec) {
      const result = { error: { code: 'NIMBUS_FUNCTION_NOT_FOUND', message: `function "${meta.fn}" does not exist any more` } };
      return this.#queue.complete(lease, { status: 'failed', result }, [], this.#now());
    }
    if (started >= m.expiresAt) {
      const error = `the event is older than the function's maxEventAge (${Math.round((m.expiresAt - m.enqueuedAt) / 1000)} s); last error: ${m.lastError ?? 'none'}`;
      const followUps = this.#callbacks(meta, m.id, { status: 500, headers: [], body: Buffer.from(error) }, 0);
      return this.#queue.deadLetter(lease, error, followUps[0] ? { callbackId: followUps[0].id } : undefined, followUps, this.#now());
    }
    let outcome: { status: number; headers: [string, string][]; body: Buffer } | { error: NimbusError };
    try {
      const res = await callFunction(this.#deps, spec, (style) => this.#request(style, meta, lease));
      outcome = { status: res.head.status, headers: res.head.headers, body: res.body };
    } catch (err) {
      outcome = { error: toNimbusError(err) };
    }
    const now = this.#now();
    const durationMs = now - started;
    const verdict = judge(outcome);
    const record = recordOf(outcome, durationMs, m.attempts);
    const reply =
      'error' in outcome
        ? {
            status: outcome.error.status,
            headers: [['content-type', 'application/json']] as [string, string][],
            body: Buffer.from(JSON.stringify(outcome.error.toJSON())),
          }
        : outcome;
    // The callback goes out only with a final outcome; the record names it, so its fate can be looked up.
    const followUps = this.#callbacks(meta, m.id, reply, durationMs);
    const result = followUps[0] ? { ...record, callbackId: followUps[0].id } : record;
    if (verdict !== 'retry') return this.#queue.complete(lease, { status: verdict, result }, followUps, now);
    const error = 'error' in outcome ? `${outcome.error.code}: ${outcome.error.message}` : `the function answered ${outcome.status}`;
    return this.#retryOrDeadLetter(lease, error, now, result, followUps);
  }

  /** A failed attempt: another one after the backoff, or the dead letters once attempts or age run out. */
  #retryOrDeadLetter(
    lease: Lease,
    error: string,
    now: number,
    record?: Record<string, unknown>,
    followUps: NewMessage[] = [],
    delayMs?: number,
  ): Promise<void> {
    const m = lease.message;
    const at = now + (delayMs ?? retryDelay(m.attempts, this.#retryBaseMs, this.#retryMaxMs, this.#random));
    if (m.attempts < m.maxAttempts && at < m.expiresAt) return this.#queue.retry(lease, at, error, now);
    const why = m.attempts >= m.maxAttempts ? `failed ${m.attempts} attempt${m.attempts === 1 ? '' : 's'}` : 'the next retry would pass maxEventAge';
    return this.#queue.deadLetter(lease, `${why}; last error: ${error}`, record, followUps, now);
  }

  #request(style: string, meta: InvokeMeta, lease: Lease): BufferedRequest {
    const m = lease.message;
    const base = { requestId: m.id, sourceIp: meta.sourceIp, protocol: 'HTTP/1.1' };
    if (meta.format === 'lambda') return lambdaRequest(style, base, m.body, 'Event');
    const headers = [...meta.headers, 'x-nimbus-invocation-id', m.id, 'x-nimbus-attempt', String(m.attempts)];
    return { head: { ...base, method: meta.method, path: meta.path, headers }, body: m.body };
  }

  /** The callback for a final outcome, if the caller asked for one (OpenFaaS's X-Callback-Url). */
  #callbacks(
    meta: InvokeMeta,
    callId: string,
    reply: { status: number; headers: [string, string][]; body: Buffer },
    durationMs: number,
  ): (NewMessage & { id: string })[] {
    if (!meta.callbackUrl) return [];
    return [callbackMessage(meta.callbackUrl, meta.fn, callId, reply, durationMs, this.#now())];
  }

  /** A refused callback is final: it is recorded as failed with the reason, never sent, never retried. */
  async #deliverCallback(lease: Lease, meta: CallbackMeta): Promise<void> {
    const outcome = await postCallback(meta, lease.message.body, this.#callbackPolicy);
    const now = this.#now();
    if (outcome.ok) return this.#queue.complete(lease, { status: 'succeeded', result: { status: outcome.status } }, [], now);
    if (outcome.refused) {
      const error = { code: 'NIMBUS_CALLBACK_REFUSED', message: outcome.error };
      return this.#queue.complete(lease, { status: 'failed', result: { error } }, [], now);
    }
    return this.#retryOrDeadLetter(lease, outcome.error, now);
  }
}

/** What GET /v1/invocations/<id> shows of an attempt's outcome. */
function recordOf(
  outcome: { status: number; headers: [string, string][]; body: Buffer } | { error: NimbusError },
  durationMs: number,
  attempt: number,
): Record<string, unknown> {
  if ('error' in outcome) return { attempt, durationMs, error: { code: outcome.error.code, message: outcome.error.message } };
  const body = outcome.body.subarray(0, MAX_RESULT_BYTES);
  const text = body.toString('utf8');
  const isText = Buffer.from(text, 'utf8').equals(body);
  return {
    attempt,
    durationMs,
    status: outcome.status,
    headers: outcome.headers,
    body: isText ? text : body.toString('base64'),
    bodyEncoding: isText ? 'utf8' : 'base64',
    truncated: outcome.body.length > MAX_RESULT_BYTES,
  };
}
