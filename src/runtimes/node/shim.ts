/**
 * The Node shim: the program every Node instance runs, as a process (frames on fd 3) or
 * as a worker thread (frames on a MessagePort); transport.ts picks. It starts generic
 * (no function loaded), says READY, and waits. LOAD specialises it: the function's env
 * replaces process.env (the thread's own copy in a worker), the bundle is imported and
 * its style detected. Then it serves REQ_* streams, several at once, answering with
 * RES_* frames.
 *
 * Lifecycle: started → READY → (LOAD) → LOADED | LOAD_ERROR → serving → stop (SIGTERM,
 * or a stop message to a thread): finish in-flight work → exit 0.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { INSTANCE_START_ENV } from '../../config/defaults.js';
import type { LoadMessage, RequestHead } from '../../runtime/protocol/frames.js';
import { encodeFrame, encodeJsonFrame, FrameType, TUNNEL_STREAM_BIT } from '../../runtime/protocol/frames.js';
import { loadProcess } from '../process/load.js';
import { makeBindings } from './bindings.js';
import { loadStyle } from './detect.js';
import type { Invocation, InvocationResult, LoadedFunction } from './invocation.js';
import { BodyQueue, ShimError } from './invocation.js';
import { requestContext, tagStdio } from './logs.js';
import { Relay } from './relay.js';
import { connect } from './transport.js';

const MAX_CHUNK_BYTES = 256 * 1024;

interface Active {
  stream: number;
  requestId: string;
  body: BodyQueue;
  /** Made the first time the function asks for the signal: most never do, and each costs. */
  abort: AbortController | undefined;
  /** Why the request was cancelled, once it has been. */
  cancelled: Error | undefined;
  responded: boolean;
  waits: Promise<unknown>[];
  /** Set while the platform has paused this stream's response body. */
  paused?: { promise: Promise<void>; resume(): void };
}

function resume(a: Active): void {
  const paused = a.paused;
  a.paused = undefined;
  paused?.resume();
}

const active = new Map<number, Active>();
let fn: LoadedFunction | undefined;
let draining = false;

const link = connect((type, stream, payload) => {
  if (stream >= TUNNEL_STREAM_BIT) {
    relay.onFrame(type, stream, payload);
    return;
  }
  switch (type) {
    case FrameType.LOAD:
      void load(JSON.parse(payload.toString('utf8')) as LoadMessage);
      break;
    case FrameType.REQ_HEAD:
      void start(stream, JSON.parse(payload.toString('utf8')) as RequestHead);
      break;
    case FrameType.REQ_BODY:
      // Copy: over a socket the payload is a view into a buffer the decoder may reuse.
      active.get(stream)?.body.push(Buffer.from(payload));
      break;
    case FrameType.REQ_END:
      active.get(stream)?.body.end();
      break;
    case FrameType.PAUSE: {
      const a = active.get(stream);
      if (a && !a.paused) {
        let release = () => {};
        const promise = new Promise<void>((r) => {
          release = r;
        });
        a.paused = { promise, resume: release };
      }
      break;
    }
    case FrameType.RESUME: {
      const a = active.get(stream);
      if (a) resume(a);
      break;
    }
    case FrameType.CANCEL: {
      const a = active.get(stream);
      if (a) {
        resume(a);
        a.responded = true;
        a.cancelled = new Error('request cancelled');
        a.body.fail(a.cancelled);
        a.abort?.abort(a.cancelled);
      }
      break;
    }
  }
});
const relay = new Relay(link.channel);
/** True while the warm-up request runs: its frames are for nobody. */
let warming = false;
const send = (frame: Buffer) => {
  if (!warming) link.channel.send(frame);
};

async function load(msg: LoadMessage): Promise<void> {
  try {
    replaceEnv({ ...baseEnv(msg), ...msg.env });
    // A function with bindings reaches the platform's state API through its own channel.
    if (process.env.NIMBUS_STATE_TOKEN) process.env.NIMBUS_STATE_URL = `http://127.0.0.1:${await relay.listen()}`;
    if (msg.runtime === 'process') {
      fn = await loadProcess(msg);
      send(encodeJsonFrame(FrameType.LOADED, 0, { style: fn.style }));
      return;
    }
    const mod = (await import(pathToFileURL(join(msg.codeDir, msg.entry)).href)) as Record<string, unknown>;
    fn = loadStyle(mod, msg.exportName, msg.style, {
      functionName: msg.functionName,
      version: msg.version,
      memoryMB: msg.memoryMB,
      env: msg.env,
      payloadFormat: msg.payloadFormat,
      bindings: msg.bindings ? makeBindings(msg.bindings, process.env.NIMBUS_STATE_URL, process.env.NIMBUS_STATE_TOKEN) : undefined,
    });
    send(encodeJsonFrame(FrameType.LOADED, 0, { style: fn.style, handles: fn.handles, timers: fn.timers }));
  } catch (err) {
    const code = err instanceof ShimError ? err.code : 'NIMBUS_LOAD_FAILED';
    const e = err instanceof Error ? err : new Error(inspect(err));
    // Into the function's logs too, so `nimbus logs` shows why it did not start.
    console.error(`Function failed to load: ${e.stack ?? e.message}`);
    send(encodeJsonFrame(FrameType.LOAD_ERROR, 0, { code, message: `${e.name}: ${e.message}`, stack: e.stack }));
  }
}

/**
 * Makes process.env exactly `env`, touching only what changes: unsetting or setting TZ
 * makes Node reset its time zone, which reads and compares the zoneinfo files (30 ms in
 * a sandbox), so a TZ that stays the same is left alone.
 */
function replaceEnv(env: Record<string, string>): void {
  for (const key of Object.keys(process.env)) if (!(key in env)) delete process.env[key];
  for (const [key, value] of Object.entries(env)) if (process.env[key] !== value) process.env[key] = value;
}

/** The documented variables every instance sees besides its own env. */
function baseEnv(msg: LoadMessage): Record<string, string> {
  return {
    ...INSTANCE_START_ENV,
    NODE_ENV: 'production',
    NIMBUS_FUNCTION_NAME: msg.functionName,
    NIMBUS_FUNCTION_VERSION: String(msg.version),
    NIMBUS_FUNCTION_MEMORY_MB: String(msg.memoryMB),
    NIMBUS_FUNCTION_TIMEOUT_MS: String(msg.timeoutMs),
    AWS_LAMBDA_FUNCTION_NAME: msg.functionName,
    AWS_LAMBDA_FUNCTION_VERSION: String(msg.version),
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(msg.memoryMB),
  };
}

function start(stream: number, head: RequestHead): Promise<void> {
  const a: Active = { stream, requestId: head.requestId, body: new BodyQueue(), abort: undefined, cancelled: undefined, responded: false, waits: [] };
  active.set(stream, a);
  const hasBody = !(head.method === 'GET' || head.method === 'HEAD');
  if (!hasBody) a.body.end();
  const inv: Invocation = {
    head,
    get signal() {
      if (!a.abort) {
        a.abort = new AbortController();
        if (a.cancelled) a.abort.abort(a.cancelled);
      }
      return a.abort.signal;
    },
    body: a.body,
    hasBody,
    readBody: () => a.body.readAll(),
    waitUntil: (p) => {
      a.waits.push(Promise.resolve(p).catch((err) => console.error('waitUntil promise rejected:', err)));
    },
  };
  return requestContext.run({ requestId: head.requestId, stream }, () => run(a, inv));
}

async function run(a: Active, inv: Invocation): Promise<void> {
  try {
    if (!fn) throw new ShimError('NIMBUS_LOAD_FAILED', 'no function loaded');
    const result = await fn.invoke(inv);
    await respond(a, result);
  } catch (err) {
    fail(a, err);
  }
  if (a.waits.length > 0) {
    // waitUntil work may run to the request's deadline, not beyond: the slot must free up.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise((resolve) => {
      timer = setTimeout(resolve, Math.max(0, inv.head.deadline - Date.now()));
    });
    await Promise.race([Promise.allSettled(a.waits), deadline]);
    clearTimeout(timer);
  }
  active.delete(a.stream);
  send(encodeFrame(FrameType.DONE, a.stream));
  if (draining && active.size === 0) process.exit(0);
}

async function respond(a: Active, result: InvocationResult): Promise<void> {
  if (a.responded) return;
  send(encodeJsonFrame(FrameType.RES_HEAD, a.stream, result.head));
  const { body } = result;
  if (body instanceof Buffer) sendBody(a.stream, body);
  else if (body) {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      if (a.responded) break;
      sendBody(a.stream, chunk);
      // Read no more of the function's stream while the channel to the platform is
      // full, or while the platform has paused it for a slow client.
      if (link.channel.needsDrain) await link.channel.drained();
      if (a.paused) await a.paused.promise;
    }
  }
  if (a.responded) return;
  a.responded = true;
  send(encodeFrame(FrameType.RES_END, a.stream));
}

function sendBody(stream: number, chunk: Uint8Array): void {
  for (let off = 0; off < chunk.length; off += MAX_CHUNK_BYTES) {
    send(encodeFrame(FrameType.RES_BODY, stream, chunk.subarray(off, off + MAX_CHUNK_BYTES)));
  }
}

function fail(a: Active, err: unknown, code?: string): void {
  const e = err instanceof Error ? err : new Error(inspect(err));
  requestContext.run({ requestId: a.requestId, stream: a.stream }, () => {
    if (code === 'NIMBUS_UNHANDLED_REJECTION') console.error('Unhandled promise rejection:', e.stack ?? String(e));
    else console.error(e.stack ?? String(e));
  });
  if (a.responded) return;
  a.responded = true;
  send(
    encodeJsonFrame(FrameType.RES_ERROR, a.stream, {
      code: code ?? (err instanceof ShimError ? err.code : 'NIMBUS_FUNCTION_ERROR'),
      message: e.message,
      errorType: e.name,
      stack: e.stack,
    }),
  );
}

// A stray rejection or exception fails the request it came from (or, when that cannot
// be told, every request in flight) and the instance carries on serving.
function failStray(err: unknown, code: string): void {
  const ctx = requestContext.getStore();
  const owner = ctx ? active.get(ctx.stream) : undefined;
  const targets = owner ? [owner] : [...active.values()];
  if (targets.length === 0) console.error(code === 'NIMBUS_UNHANDLED_REJECTION' ? 'Unhandled promise rejection:' : 'Uncaught exception:', err);
  for (const a of targets) fail(a, err, code);
}
process.on('unhandledRejection', (reason) => failStray(reason, 'NIMBUS_UNHANDLED_REJECTION'));
process.on('uncaughtException', (err) => failStray(err, 'NIMBUS_FUNCTION_ERROR'));

link.onStop(() => {
  draining = true;
  if (active.size === 0) process.exit(0);
});

/**
 * Pays the one-time costs before saying READY, while the instance is still generic:
 * V8 compiles each function on its first call, and Node builds fetch's classes, web
 * streams and the async context lazily, which would otherwise all land on a function's
 * first request. So the instance imports a small Workers function (warm-up.ts) and
 * serves it two requests, GET and POST with a streamed body, through the same path as
 * any other, its frames dropped; then it is generic again.
 */
async function warmUp(): Promise<void> {
  tagStdio();
  const native = globalThis.Response;
  fn = loadStyle((await import('./warm-up.js')) as Record<string, unknown>, undefined, undefined, {
    functionName: 'warm-up',
    version: 0,
    memoryMB: 0,
    env: {},
  });
  warming = true;
  try {
    const head = (method: string): RequestHead => ({
      requestId: 'warm-up',
      method,
      path: '/warm-up?x=1',
      headers: ['Host', 'localhost', 'Content-Type', 'text/plain', 'Accept', '*/*'],
      deadline: Date.now() + 10_000,
      sourceIp: '127.0.0.1',
      protocol: 'HTTP/1.1',
    });
    await start(WARM_STREAM, head('GET'));
    const post = start(WARM_STREAM, head('POST'));
    active.get(WARM_STREAM)?.body.push(Buffer.from('warm'));
    active.get(WARM_STREAM)?.body.end();
    await post;
  } finally {
    warming = false;
    fn = undefined;
    globalThis.Response = native;
  }
}

/** The warm-up requests' stream: past any the platform assigns. */
const WARM_STREAM = 0xffffffff;

void warmUp()
  .catch((err) => console.error('nimbus: warm-up failed (the first request will be slower):', err))
  .then(() => send(encodeJsonFrame(FrameType.READY, 0, { pid: process.pid, runtime: 'node', isolation: link.isolation })));
