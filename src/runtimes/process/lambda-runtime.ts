import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LoadMessage } from '../../runtime/protocol/frames.js';
import type { InvocationResult, LoadedFunction } from '../node/invocation.js';
import { ShimError } from '../node/invocation.js';
import { parseEvent, toEventV2 } from '../node/styles/lambda.js';
import { fromResultV2 } from '../node/styles/lambda-result.js';
import { toEventV1 } from '../node/styles/lambda-v1.js';
import { raceReady, spawnCommand } from './common.js';

interface Pending {
  id: string;
  event: unknown;
  /** A direct invocation (Lambda Invoke API): the response is the payload, not an HTTP result. */
  direct: boolean;
  deadline: number;
  resolve(result: InvocationResult): void;
  reject(err: unknown): void;
}

const PREFIX = '/2018-06-01/runtime';

/**
 * Custom runtimes: an executable `bootstrap` (or the manifest's command) that loops on
 * the AWS Lambda Runtime API, served by this instance on 127.0.0.1. Events are API
 * Gateway HTTP events; the runtime's response goes through the same result mapping as
 * the Node Lambda style.
 */
export async function loadLambdaRuntime(msg: LoadMessage): Promise<LoadedFunction> {
  const queue: Pending[] = [];
  const inFlight = new Map<string, Pending>();
  let parked: ServerResponse | undefined;
  let ready!: () => void;
  let initError!: (err: Error) => void;
  const readyPromise = new Promise<void>((resolve, reject) => {
    ready = resolve;
    initError = reject;
  });

  const deliver = () => {
    if (!parked || queue.length === 0) return;
    const next = queue.shift() as Pending;
    inFlight.set(next.id, next);
    const res = parked;
    parked = undefined;
    res.writeHead(200, {
      'content-type': 'application/json',
      'lambda-runtime-aws-request-id': next.id,
      'lambda-runtime-deadline-ms': String(next.deadline),
      'lambda-runtime-invoked-function-arn': `arn:aws:lambda:local:000000000000:function:${msg.functionName}`,
      'lambda-runtime-trace-id': `Root=1-${next.id}`,
    });
    res.end(JSON.stringify(next.event));
  };

  const server = createServer((req, res) => {
    readJson(req).then(
      (body) => route(req, res, body),
      () => res.writeHead(400).end(),
    );
  });
  const route = (req: IncomingMessage, res: ServerResponse, body: { raw: string; json: unknown }) => {
    const url = req.url ?? '';
    if (req.method === 'GET' && url === `${PREFIX}/invocation/next`) {
      parked = res;
      ready();
      deliver();
      return;
    }
    if (req.method === 'POST' && url === `${PREFIX}/init/error`) {
      const e = body.json as { errorMessage?: string; errorType?: string } | undefined;
      initError(new Error(`${e?.errorType ?? 'InitError'}: ${e?.errorMessage ?? body.raw}`));
      res.writeHead(202).end('{"status":"OK"}');
      return;
    }
    const m = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url);
    const pending = m ? inFlight.get(decodeURIComponent(m[1])) : undefined;
    if (!m || !pending || req.method !== 'POST') {
      res.writeHead(m ? 400 : 404, { 'content-type': 'application/json' }).end('{"errorMessage":"unknown request id or path","errorType":"InvalidRequestID"}');
      return;
    }
    inFlight.delete(pending.id);
    if (m[2] === 'response') {
      try {
        if (pending.direct) pending.resolve({ head: { status: 200, headers: [['content-type', 'application/json']] }, body: Buffer.from(body.raw || 'null') });
        else pending.resolve(fromResultV2(body.json !== undefined ? body.json : body.raw));
      } catch (err) {
        pending.reject(err);
      }
    } else {
      const e = body.json as { errorMessage?: string; errorType?: string } | undefined;
      const err = new ShimError('NIMBUS_FUNCTION_ERROR', e?.errorMessage ?? body.raw);
      err.name = String(e?.errorType ?? req.headers['lambda-runtime-function-error-type'] ?? 'Error');
      pending.reject(err);
    }
    res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"OK"}');
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const command = msg.command ?? './bootstrap';
  const child = spawnCommand(
    { ...msg, command },
    { AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}`, _HANDLER: msg.handler ?? '', LAMBDA_TASK_ROOT: msg.codeDir, LAMBDA_RUNTIME_DIR: msg.codeDir },
    'forward',
  );
  await raceReady(child, readyPromise, 'ask the Runtime API for its first event');
  return {
    style: 'lambda-runtime',
    async invoke(inv) {
      const body = await inv.readBody();
      const direct = inv.head.event === true;
      const event = direct ? parseEvent(body) : msg.payloadFormat === '1.0' ? toEventV1(inv, body) : toEventV2(inv, body);
      return new Promise<InvocationResult>((resolve, reject) => {
        queue.push({ id: inv.head.requestId, event, direct, deadline: inv.head.deadline, resolve, reject });
        deliver();
      });
    },
  };
}

function readJson(req: IncomingMessage): Promise<{ raw: string; json: unknown }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', reject);
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = raw ? JSON.parse(raw) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ raw, json });
    });
  });
}
