import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { MAX_REQUEST_BODY_BYTES } from '../config/defaults.js';
import { functionNameFromPath } from '../config/manifest.js';
import type { FunctionRegistry } from '../control/registry.js';
import type { FunctionSpec } from '../runtime/function-pool.js';
import type { Instance, InvocationSink } from '../runtime/instance.js';
import type { RuntimeManager } from '../runtime/manager.js';
import type { ResponseHead } from '../runtime/protocol/frames.js';
import { NimbusError } from '../shared/errors.js';
import { REQUEST_ID_HEADER, sendError } from '../shared/http.js';

export interface GatewayDeps {
  registry: FunctionRegistry;
  runtime: RuntimeManager;
  isDraining(): boolean;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

/**
 * The data plane: `ANY /fn/<name>[/<path>]` invokes the function's latest version.
 * Bodies stream both ways; the function sees the path after /fn/<name>.
 */
export function createGateway(deps: GatewayDeps): Server {
  const server = createServer((req, res) => {
    const requestId = randomUUID();
    try {
      route(deps, req, res, requestId);
    } catch (err) {
      sendError(res, err, requestId);
    }
  });
  server.keepAliveTimeout = 65_000;
  return server;
}

function route(deps: GatewayDeps, req: IncomingMessage, res: ServerResponse, requestId: string): void {
  const url = req.url ?? '/';
  if (!url.startsWith('/fn/'))
    throw new NimbusError('NIMBUS_NOT_FOUND', `no route for ${url.split('?')[0]}`, { hint: 'functions are served under /fn/<name>/' });
  const slash = url.indexOf('/', 4);
  const query = url.indexOf('?', 4);
  const end = slash === -1 ? (query === -1 ? url.length : query) : query !== -1 && query < slash ? query : slash;
  const name = functionNameFromPath(url.slice(4, end));
  const spec = deps.registry.spec(name);
  if (!spec) throw new NimbusError('NIMBUS_FUNCTION_NOT_FOUND', `function "${name}" does not exist`);
  if (deps.isDraining()) throw new NimbusError('NIMBUS_SHUTTING_DOWN', 'the platform is shutting down');
  if (Number(req.headers['content-length'] ?? 0) > MAX_REQUEST_BODY_BYTES) {
    res.setHeader('connection', 'close');
    throw new NimbusError('NIMBUS_PAYLOAD_TOO_LARGE', `the request body is larger than ${MAX_REQUEST_BODY_BYTES} bytes`);
  }
  let path = url.slice(end);
  if (!path.startsWith('/')) path = `/${path}`;
  void invoke(deps, spec, req, res, requestId, path);
}

async function invoke(deps: GatewayDeps, spec: FunctionSpec, req: IncomingMessage, res: ServerResponse, requestId: string, path: string): Promise<void> {
  let pool = deps.runtime.pool(spec);
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

  try {
    try {
      instance = await pool.acquire(waiting.signal);
    } catch (err) {
      // A deploy replaced the version this request was waiting for: wait for the new one.
      const next = deps.registry.spec(spec.name);
      if (finished || deps.isDraining() || !next || next.key === spec.key || (err as NimbusError).code !== 'NIMBUS_SHUTTING_DOWN') throw err;
      pool = deps.runtime.pool(next);
      instance = await pool.acquire(waiting.signal);
    }
  } catch (err) {
    if (!finished) {
      finish();
      sendError(res, err, requestId);
    }
    return;
  }
  if (finished) {
    pool.release(instance);
    return;
  }

  const target = instance;
  const sink = responseSink(res, requestId, req.method === 'HEAD', () => finish(), {
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
      sendError(res, new NimbusError('NIMBUS_PAYLOAD_TOO_LARGE', `the request body is larger than ${MAX_REQUEST_BODY_BYTES} bytes`), requestId);
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
function responseSink(res: ServerResponse, requestId: string, isHead: boolean, finish: () => void, flow: { pause(): void; resume(): void }): InvocationSink {
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
      sendError(res, err, requestId);
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
