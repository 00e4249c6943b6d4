import type { FunctionInfo, Invocation, InvocationResult, LoadedFunction } from '../invocation.js';
import { ShimError } from '../invocation.js';
import { bufferedBody, installResponseSource, NativeResponse } from './response-source.js';

interface WorkersModule {
  fetch(request: Request, env: Record<string, unknown>, ctx: ExecutionContext): Response | Promise<Response>;
  scheduled?(controller: ScheduledController, env: Record<string, unknown>, ctx: ExecutionContext): unknown;
  queue?(batch: MessageBatch, env: Record<string, unknown>, ctx: ExecutionContext): unknown;
  /** Not a Workers handler: how the Azure adapter receives timer ticks. */
  timer?(tick: TimerTick): unknown;
}

export interface TimerTick {
  /** The app.timer to run, by name (older events carry only the schedule). */
  name?: string;
  schedule: string;
  scheduledTime: number;
  /** The schedule's next tick after this one, epoch ms. */
  nextTime?: number;
  isPastDue: boolean;
  missed: number;
}

interface ScheduledController {
  readonly cron: string;
  readonly scheduledTime: number;
  readonly type: 'scheduled';
  noRetry(): void;
}

interface QueueMessage {
  readonly id: string;
  readonly timestamp: Date;
  readonly body: unknown;
  readonly attempts: number;
  ack(): void;
  retry(options?: { delaySeconds?: number }): void;
}

interface MessageBatch {
  readonly queue: string;
  readonly messages: readonly QueueMessage[];
  ackAll(): void;
  retryAll(options?: { delaySeconds?: number }): void;
}

/** A queue() batch as the platform sends it (body base64). */
interface BatchPayload {
  queue: string;
  messages: { id: string; timestamp: number; attempts: number; contentType: string; body: string }[];
}

const INVOCATION = Symbol('nimbus.request.invocation');

/**
 * A Request whose `signal` aborts when the client goes away. Handing the signal to
 * the Request constructor makes every Request five times as expensive to build, so
 * the getter returns the invocation's signal instead, made when first asked for.
 */
class InvocationRequest extends Request {
  [INVOCATION]!: Invocation;
}
Object.defineProperty(InvocationRequest.prototype, 'signal', {
  get(this: InvocationRequest) {
    return this[INVOCATION].signal;
  },
});

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
}

/**
 * The native Web-standard style (as in Cloudflare Workers):
 * `export default { fetch(request, env, ctx) }`.
 */
export function loadWorkers(mod: WorkersModule, info: FunctionInfo): LoadedFunction {
  const env = Object.freeze({ ...info.env, ...info.bindings });
  installResponseSource();
  return {
    style: 'workers',
    handles: (['fetch', 'scheduled', 'queue'] as const).filter((h) => typeof mod[h] === 'function'),
    async invoke(inv: Invocation): Promise<InvocationResult> {
      if (inv.head.trigger) return runTrigger(mod, inv, env);
      const host = findHeader(inv.head.headers, 'host') ?? 'localhost';
      const url = `http://${host}${inv.head.path}`;
      const method = inv.head.method;
      const init: RequestInit & { duplex?: 'half' } = { method, headers: toHeaders(inv.head.headers) };
      if (inv.hasBody && method !== 'GET' && method !== 'HEAD') {
        init.body = ReadableStream.from(inv.body);
        init.duplex = 'half';
      }
      const request = new InvocationRequest(url, init);
      request[INVOCATION] = inv;
      const ctx: ExecutionContext = { waitUntil: (p) => inv.waitUntil(p), passThroughOnException() {} };
      const response = await mod.fetch(request, env, ctx);
      if (!(response instanceof NativeResponse)) {
        throw new ShimError('NIMBUS_INVALID_RESPONSE', `fetch() returned ${describe(response)} instead of a Response`);
      }
      const headers: [string, string][] = [];
      response.headers.forEach((value, name) => {
        if (name !== 'set-cookie') headers.push([name, value]);
      });
      for (const cookie of response.headers.getSetCookie()) headers.push(['set-cookie', cookie]);
      const buffered = bufferedBody(response);
      const body = buffered !== undefined ? buffered : response.body ? (response.body as unknown as AsyncIterable<Uint8Array>) : null;
      return { head: { status: response.status, headers }, body };
    },
  };
}

/** scheduled(), queue() (and the Azure timer hook) for a trigger's event. */
async function runTrigger(mod: WorkersModule, inv: Invocation, env: Record<string, unknown>): Promise<InvocationResult> {
  const kind = inv.head.trigger as 'scheduled' | 'queue' | 'timer';
  const handler = mod[kind];
  if (typeof handler !== 'function')
    throw new ShimError('NIMBUS_HANDLER_NOT_FOUND', `the function has no ${kind}() handler for this ${kind === 'queue' ? 'message' : 'schedule'}`);
  const payload = JSON.parse((await inv.readBody()).toString('utf8'));
  const ctx: ExecutionContext = { waitUntil: (p) => inv.waitUntil(p), passThroughOnException() {} };
  if (kind === 'timer') {
    await (handler as NonNullable<WorkersModule['timer']>).call(mod, payload as TimerTick);
    return { head: { status: 204, headers: [] }, body: null };
  }
  if (kind === 'scheduled') {
    let retry = true;
    const controller: ScheduledController = { cron: payload.cron, scheduledTime: payload.scheduledTime, type: 'scheduled', noRetry: () => (retry = false) };
    try {
      await (handler as NonNullable<WorkersModule['scheduled']>).call(mod, controller, env, ctx);
    } catch (err) {
      if (retry) throw err;
      // noRetry(): the failure is final (4xx), not retried.
      console.error(err);
      return {
        head: { status: 422, headers: [['content-type', 'text/plain']] },
        body: Buffer.from(`scheduled() failed after noRetry(): ${(err as Error)?.message ?? String(err)}`),
      };
    }
    return { head: { status: 204, headers: [] }, body: null };
  }
  return runQueue(mod, handler as NonNullable<WorkersModule['queue']>, payload as BatchPayload, env, ctx);
}

/**
 * A queue() batch with Cloudflare's semantics: the first ack() or retry() of a message
 * decides it; ackAll()/retryAll() decide the rest; when queue() returns, undecided
 * messages are acknowledged, and when it throws, they are retried.
 */
async function runQueue(
  mod: WorkersModule,
  handler: NonNullable<WorkersModule['queue']>,
  payload: BatchPayload,
  env: Record<string, unknown>,
  ctx: ExecutionContext,
): Promise<InvocationResult> {
  const decided = new Map<string, { retry: boolean; delaySeconds?: number }>();
  const decide = (id: string, retry: boolean, delaySeconds?: number) => {
    if (delaySeconds !== undefined && !(typeof delaySeconds === 'number' && delaySeconds >= 0 && delaySeconds <= 43_200))
      throw new RangeError(`retry({ delaySeconds }) takes 0 to 43200 seconds (12 hours); got ${String(delaySeconds)}`);
    if (!decided.has(id)) decided.set(id, { retry, ...(delaySeconds !== undefined ? { delaySeconds } : {}) });
  };
  const messages: QueueMessage[] = payload.messages.map((m) => ({
    id: m.id,
    timestamp: new Date(m.timestamp),
    attempts: m.attempts,
    body: decodeBody(m.contentType, Buffer.from(m.body, 'base64')),
    ack: () => decide(m.id, false),
    retry: (o) => decide(m.id, true, o?.delaySeconds),
  }));
  const batch: MessageBatch = {
    queue: payload.queue,
    messages,
    ackAll: () => {
      for (const m of payload.messages) decide(m.id, false);
    },
    retryAll: (o) => {
      for (const m of payload.messages) decide(m.id, true, o?.delaySeconds);
    },
  };
  let error: string | undefined;
  try {
    await handler.call(mod, batch, env, ctx);
  } catch (err) {
    console.error(err);
    error = (err as Error)?.message ?? String(err);
  }
  const results = payload.messages.map((m) => ({ id: m.id, ...(decided.get(m.id) ?? { retry: error !== undefined }) }));
  return { head: { status: 200, headers: [['content-type', 'application/json']] }, body: Buffer.from(JSON.stringify({ results, error })) };
}

/** A message body as Workers see it: JSON parsed, text as a string, anything else as an ArrayBuffer. */
function decodeBody(contentType: string, raw: Buffer): unknown {
  const type = contentType.split(';')[0].trim().toLowerCase();
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch {
      return raw.toString('utf8');
    }
  }
  if (type.startsWith('text/')) return raw.toString('utf8');
  return raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
}

function toHeaders(raw: string[]): Headers {
  const headers = new Headers();
  for (let i = 0; i < raw.length; i += 2) {
    try {
      headers.append(raw[i], raw[i + 1]);
    } catch {
      // A header the Fetch standard forbids is dropped rather than failing the request.
    }
  }
  return headers;
}

function findHeader(raw: string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) return raw[i + 1];
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'Object'})`;
  return typeof value;
}
