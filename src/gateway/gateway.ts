import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { MAX_REQUEST_BODY_BYTES, RETRY_AFTER_S } from '../config/defaults.js';
import { functionNameFromPath } from '../config/manifest.js';
import type { FunctionPool, FunctionSpec } from '../runtime/function-pool.js';
import type { Instance, InvocationSink } from '../runtime/instance.js';
import type { ResponseHead } from '../runtime/protocol/frames.js';
import { NimbusError, toNimbusError } from '../shared/errors.js';
import { REQUEST_ID_HEADER, sendError } from '../shared/http.js';
import { acquireSlot, type CompatDeps } from './call.js';
import { handleLambdaApi, LAMBDA_API_PREFIX } from './lambda-api.js';
import { handleOpenFaasSystem } from './openfaas-api.js';

export type GatewayDeps = CompatDeps;

type SendError = (res: ServerResponse, err: unknown, requestId: string) => void;

/** /function/<name> is OpenFaaS's route: its errors are plain text, as OpenFaaS's gateway sends them. */
const sendTextError: SendError = (res, err, requestId) => {
  const e = toNimbusError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', [REQUEST_ID_HEADER]: requestId, ...e.headers };
  if (e.status === 429 || e.status === 503) headers['retry-after'] = String(RETRY_AFTER_S);
  res.writeHead(e.status, headers).end(`${e.message}\n`);
};

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

/**
 * The data plane: `ANY /fn/<name>[/<path>]` invokes the function's latest version.
 * Bodies stream both ways; the function sees the path after /fn/<name>. The
 * compatible APIs live here too: OpenFaaS's /function/<name> and /system/, and the
 * AWS Lambda API under /2015-03-31/functions.
 */
export function createGateway(deps: GatewayDeps): Server {
  const server = createServer((req, res) => {
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
    const openfaas = url.startsWith('/function/');
    const fail = openfaas ? sendTextError : sendError;
    try {
      route(deps, req, res, requestId, openfaas ? '/function/'.length : 0, fail);
    } catch (err) {
      fail(res, err, requestId);
    }
  });
  server.keepAliveTimeout = 65_000;
  return server;
}

/** `prefix` is where the name starts: after /fn/ (0 means /fn/) or OpenFaaS's /function/. */
function route(deps: GatewayDeps, req: IncomingMessage, res: ServerResponse, requestId: string, prefix: number, fail: SendError): void {
  const url = req.url ?? '/';
  if (prefix === 0) {
    if (!url.startsWith('/fn/'))
      throw new NimbusError('NIMBUS_NOT_FOUND', `no route for ${url.split('?')[0]}`, { hint: 'functions are served under /fn/<name>/' });
    prefix = 4;
  }
  const slash = url.indexOf('/', prefix);
  const query = url.indexOf('?', prefix);
  const end = slash === -1 ? (query === -1 ? url.length : query) : query !== -1 && query < slash ? query : slash;
  const name = functionNameFromPath(url.slice(prefix, end));
  const spec = deps.registry.spec(name);
  if (!spec) throw new NimbusError('NIMBUS_FUNCTION_NOT_FOUND', `function "${name}" does not exist`);
  if (deps.isDraining()) throw new NimbusError('NIMBUS_SHUTTING_DOWN', 'the platform is shutting down');
  if (Number(req.headers['content-length'] ?? 0) > MAX_REQUEST_BODY_BYTES) {
    res.setHeader('connection', 'close');
    throw new NimbusError('NIMBUS_PAYLOAD_TOO_LARGE', `the request body is larger than ${MAX_REQUEST_BODY_BYTES} bytes`);
  }
  let path = url.slice(end);
  if (!path.startsWith('/')) path = `/${path}`;
  void invoke(deps, spec, req, res, requestId, path, fail);
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
  const waiting = new AbortController();
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
    else waiting.abort(new NimbusError('NIMBUS_FUNCTION_TIMEOUT', `function "${spec.name}" did not start within its ${spec.timeoutMs} ms timeout`));
  }, spec.timeoutMs);

  res.on('close', () => {
    if (finished) return;
    finish();
    if (instance) instance.cancel(stream);
    else waiting.abort(new Error('client closed'));
  });

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
