import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { GATEWAY_KEEP_ALIVE_TIMEOUT_MS, MAX_ASYNC_BODY_BYTES, MAX_IDEMPOTENCY_KEY_LENGTH, MAX_REQUEST_BODY_BYTES, RETRY_AFTER_S } from '../config/defaults.js';
import { functionNameFromPath } from '../config/manifest.js';
import type { FunctionPool, FunctionSpec } from '../runtime/function-pool.js';
import type { Instance, InvocationSink } from '../runtime/instance.js';
import type { ResponseHead } from '../runtime/protocol/frames.js';
import { SERVER_OPTIONS } from '../shared/connection-limits.js';
import { NimbusError, toNimbusError } from '../shared/errors.js';
import { closeIfBodyUnread, HOP_BY_HOP, REQUEST_ID_HEADER, readBody, sendError } from '../shared/http.js';
import { acquireSlot } from './call.js';
import type { CompatDeps } from './compat-deps.js';
import { handleLambdaApi, LAMBDA_API_PREFIX } from './lambda-api.js';
import { handleOpenFaasSystem, isOpenFaasAuthorized } from './openfaas-api.js';
import { checkSigV4Head } from './sigv4.js';

export type GatewayDeps = CompatDeps;

type SendError = (res: ServerResponse, err: unknown, requestId: string) => void;

/** /function/<name> is OpenFaaS's route: its errors are plain text, as OpenFaaS's gateway sends them. */
const sendTextError: SendError = (res, err, requestId) => {
  const e = toNimbusError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  closeIfBodyUnread(res);
  const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', [REQUEST_ID_HEADER]: requestId, ...e.headers };
  if (e.status === 429 || e.status === 503) headers['retry-after'] = String(RETRY_AFTER_S);
  res.writeHead(e.status, headers).end(`${e.message}\n`);
};

/**
 * The data plane: `ANY /fn/<name>[/<path>]` invokes the function's latest version.
 * Bodies stream both ways; the function sees the path after /fn/<name>. The
 * compatible APIs live here too: OpenFaaS's /function/<name> and /system/, and the
 * AWS Lambda API under /2015-03-31/functions.
 */
export function createGateway(deps: GatewayDeps): Server {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (url.startsWith(LAMBDA_API_PREFIX)) {
      void handleLambdaApi(deps, req, res);
      return;
    }
    if (url.startsWith('/system/')) {
      void handleOpenFaasSystem(deps, req, res);
      return;
    }
    const requestId = randomUUID();
    const entry = ENTRIES.find((e) => url.startsWith(e.prefix)) ?? ENTRIES[0];
    const fail = entry.openfaas ? sendTextError : sendError;
    try {
      route(deps, req, res, requestId, entry, fail);
    } catch (err) {
      fail(res, err, requestId);
    }
  };
  const server = createServer(SERVER_OPTIONS, onRequest);
  // "Expect: 100-continue": the APIs behind a credential invite the body only when the
  // head passes their checks; a refused request never sends it.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (mayContinue(deps, req)) res.writeContinue();
    onRequest(req, res);
  });
  server.keepAliveTimeout = GATEWAY_KEEP_ALIVE_TIMEOUT_MS;
  return server;
}

function mayContinue(deps: GatewayDeps, req: IncomingMessage): boolean {
  const url = req.url ?? '/';
  if (url.startsWith(LAMBDA_API_PREFIX)) return !('code' in checkSigV4Head({ method: req.method ?? 'GET', url, headers: req.headers }, 'lambda'));
  if (url.startsWith('/system/')) return isOpenFaasAuthorized(deps, req);
  return true;
}

/** The ways into a function: sync or queued, Nimbus's own routes or OpenFaaS's (plain-text errors). */
interface Entry {
  prefix: string;
  openfaas: boolean;
  async: boolean;
}
const ENTRIES: Entry[] = [
  { prefix: '/fn/', openfaas: false, async: false },
  { prefix: '/async/', openfaas: false, async: true },
  { prefix: '/function/', openfaas: true, async: false },
  { prefix: '/async-function/', openfaas: true, async: true },
];

function route(deps: GatewayDeps, req: IncomingMessage, res: ServerResponse, requestId: string, entry: Entry, fail: SendError): void {
  const url = req.url ?? '/';
  if (!url.startsWith(entry.prefix)) {
    throw new NimbusError('NIMBUS_NOT_FOUND', `no route for ${url.split('?')[0]}`, {
      hint: 'functions are served under /fn/<name>/ (and queued under /async/<name>/)',
    });
  }
  const prefix = entry.prefix.length;
  const slash = url.indexOf('/', prefix);
  const query = url.indexOf('?', prefix);
  const end = slash === -1 ? (query === -1 ? url.length : query) : query !== -1 && query < slash ? query : slash;
  const name = functionNameFromPath(url.slice(prefix, end));
  const spec = deps.registry.spec(name);
  if (!spec) throw new NimbusError('NIMBUS_FUNCTION_NOT_FOUND', `function "${name}" does not exist`);
  if (deps.isDraining()) throw new NimbusError('NIMBUS_SHUTTING_DOWN', 'the platform is shutting down');
  const limit = entry.async ? MAX_ASYNC_BODY_BYTES : MAX_REQUEST_BODY_BYTES;
  if (Number(req.headers['content-length'] ?? 0) > limit) {
    res.setHeader('connection', 'close');
    throw tooLarge(entry.async);
  }
  let path = url.slice(end);
  if (!path.startsWith('/')) path = `/${path}`;
  if (entry.async) void invokeAsync(deps, spec, req, res, requestId, path, entry.openfaas).catch((err: unknown) => fail(res, err, requestId));
  else void invoke(deps, spec, req, res, requestId, path, fail);
}

function tooLarge(async: boolean): NimbusError {
  if (!async) return new NimbusError('NIMBUS_PAYLOAD_TOO_LARGE', `the request body is larger than ${MAX_REQUEST_BODY_BYTES} bytes`);
  return new NimbusError('NIMBUS_PAYLOAD_TOO_LARGE', `an async invocation's body is larger than ${MAX_ASYNC_BODY_BYTES} bytes`, {
    hint: 'async invocations carry at most 1 MB; store large data elsewhere and send a reference',
  });
}

/** Headers the queued request keeps: the client's, minus hop-by-hop ones. */
function queuedHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!HOP_BY_HOP.has(raw[i].toLowerCase())) out.push(raw[i], raw[i + 1]);
  return out;
}

/**
 * `/async/<name>` and OpenFaaS's `/async-function/<name>`: the request is committed to
 * the durable queue, then answered 202 with the invocation id (X-Call-Id on OpenFaaS's
 * route). An X-Callback-Url gets the result; an Idempotency-Key deduplicates retries.
 */
async function invokeAsync(
  deps: GatewayDeps,
  spec: FunctionSpec,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  path: string,
  openfaas: boolean,
): Promise<void> {
  const callbackUrl = header(req, 'x-callback-url');
  // Before the body is read: a URL aimed at loopback, link-local or private addresses is refused (400 NIMBUS_CALLBACK_REFUSED).
  if (callbackUrl !== undefined) deps.events.callbackPolicy.checkUrl(callbackUrl);
  const idempotencyKey = header(req, 'idempotency-key');
  if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH)) {
    throw new NimbusError('NIMBUS_INVALID_REQUEST', `Idempotency-Key must be 1-${MAX_IDEMPOTENCY_KEY_LENGTH} characters`, {
      hint: 'use a unique id per logical request, e.g. a UUID',
    });
  }
  let body: Buffer;
  try {
    body = await readBody(req, MAX_ASYNC_BODY_BYTES, 'NIMBUS_PAYLOAD_TOO_LARGE');
  } catch (err) {
    res.setHeader('connection', 'close');
    throw (err as NimbusError).code === 'NIMBUS_PAYLOAD_TOO_LARGE' ? tooLarge(true) : err;
  }
  const { id, duplicate } = await deps.events.invokeAsync(spec, {
    method: req.method ?? 'POST',
    path,
    headers: queuedHeaders(req.rawHeaders),
    body,
    sourceIp: req.socket.remoteAddress ?? '',
    format: 'http',
    callbackUrl,
    idempotencyKey,
  });
  const headers: Record<string, string> = { [REQUEST_ID_HEADER]: requestId, 'x-call-id': id };
  if (duplicate) headers['x-nimbus-idempotent-replay'] = 'true';
  if (openfaas) {
    res.writeHead(202, { ...headers, 'content-length': '0' }).end();
    return;
  }
  const text = JSON.stringify({ id, status: 'queued', duplicate, statusUrl: `${deps.adminUrl()}/v1/invocations/${id}` });
  res.writeHead(202, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }).end(text);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function invoke(
  deps: GatewayDeps,
  spec: FunctionSpec,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  path: string,
  fail: SendError,
): Promise<void> {
  const deadline = Date.now() + spec.timeoutMs;
  /** Made only when the request has to wait for an instance. */
  let waiting: AbortController | undefined;
  let instance: Instance | undefined;
  let stream = 0;
  let finished = false;
  const finish = () => {
    finished = true;
    clearTimeout(timer);
  };
  const timer = setTimeout(() => {
    if (finished) return;
    // Past the deadline: a request still waiting for an instance gives up; one that is
    // running is answered 504 and its instance killed or drained (Instance.timeOut).
    if (instance) instance.timeOut(stream, spec.timeoutMs);
    else waiting?.abort(new NimbusError('NIMBUS_FUNCTION_TIMEOUT', `function "${spec.name}" did not start within its ${spec.timeoutMs} ms timeout`));
  }, spec.timeoutMs);

  res.on('close', () => {
    if (finished) return;
    finish();
    if (instance) instance.cancel(stream);
    else waiting?.abort(new Error('client closed'));
  });

  // The warm path: a free slot now. Otherwise wait for one (a cold start, or a queue).
  instance = deps.runtime.pool(spec).tryAcquire();
  if (!instance) {
    waiting = new AbortController();
    let pool: FunctionPool;
    try {
      ({ pool, instance } = await acquireSlot(deps, spec, waiting.signal));
    } catch (err) {
      if (!finished) {
        finish();
        fail(res, err, requestId);
      }
      return;
    }
    if (finished) {
      pool.release(instance);
      return;
    }
  }

  const target = instance;
  const sink = responseSink(res, requestId, req.method === 'HEAD', () => finish(), fail, {
    pause: () => target.pause(stream),
    resume: () => target.resume(stream),
  });
  stream = target.invoke(
    {
      requestId,
      method: req.method ?? 'GET',
      path,
      headers: req.rawHeaders,
      deadline,
      sourceIp: req.socket.remoteAddress ?? '',
      protocol: `HTTP/${req.httpVersion}`,
    },
    sink,
  );
  // A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112
  // §6.3), nor one with Content-Length: 0: its end goes to the instance with its head,
  // in the same write, rather than a tick later in a second one.
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) {
    target.endBody(stream);
    return;
  }
  let received = 0;
  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > MAX_REQUEST_BODY_BYTES) {
      if (finished) return;
      target.cancel(stream);
      finish();
      res.setHeader('connection', 'close');
      fail(res, new NimbusError('NIMBUS_PAYLOAD_TOO_LARGE', `the request body is larger than ${MAX_REQUEST_BODY_BYTES} bytes`), requestId);
      return;
    }
    target.sendBody(stream, chunk);
  });
  req.on('end', () => target.endBody(stream));
}

/**
 * Writes an instance's response to the client. When the head, the body and the end
 * arrive together (the usual case: the shim sends them in one write), the response
 * goes out in one piece with a Content-Length; otherwise it streams, chunked.
 */
function responseSink(
  res: ServerResponse,
  requestId: string,
  isHead: boolean,
  finish: () => void,
  fail: SendError,
  flow: { pause(): void; resume(): void },
): InvocationSink {
  let head: ResponseHead | undefined;
  let paused = false;
  const write = (chunk: Buffer) => {
    if (res.write(chunk) || paused) return;
    paused = true;
    flow.pause();
    res.once('drain', () => {
      paused = false;
      flow.resume();
    });
  };
  let held: Buffer[] = [];
  let streaming = false;
  const startStreaming = () => {
    if (streaming || !head || res.writableEnded) return;
    streaming = true;
    writeHead(res, head, requestId, undefined);
    for (const chunk of held) write(chunk);
    held = [];
  };
  return {
    head(h) {
      head = h;
      queueMicrotask(startStreaming);
    },
    body(chunk) {
      if (streaming) write(chunk);
      else held.push(chunk);
    },
    end() {
      finish();
      if (streaming || !head) {
        res.end();
        return;
      }
      const body = held.length === 1 ? held[0] : Buffer.concat(held);
      const bodiless = isHead || head.status === 204 || head.status === 304;
      writeHead(res, head, requestId, bodiless ? undefined : body.length);
      res.end(bodiless ? undefined : body);
    },
    error(err) {
      finish();
      fail(res, err, requestId);
    },
  };
}

function writeHead(res: ServerResponse, head: ResponseHead, requestId: string, contentLength: number | undefined): void {
  const flat: string[] = [];
  for (const [name, value] of head.headers) {
    if (HOP_BY_HOP.has(name)) continue;
    if (name === 'content-length') contentLength = undefined;
    flat.push(name, value);
  }
  flat.push(REQUEST_ID_HEADER, requestId);
  if (contentLength !== undefined) flat.push('content-length', String(contentLength));
  res.writeHead(head.status, flat);
}
