import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { zipSync } from 'fflate';
import { stringify as toYaml } from 'yaml';
import { readBundleZip } from '../artifacts/artifact-store.js';
import { MAX_ASYNC_BODY_BYTES, MAX_LAMBDA_CREATE_BODY_BYTES, MAX_LAMBDA_OTHER_BODY_BYTES, MAX_REQUEST_BODY_BYTES } from '../config/defaults.js';
import { validateFunctionName } from '../config/manifest.js';
import type { FunctionSpec } from '../runtime/function-pool.js';
import { findPython } from '../runtime/launcher.js';
import { toNimbusError } from '../shared/errors.js';
import { closeIfBodyUnread } from '../shared/http.js';
import type { FunctionRecord } from '../store/store.js';
import { apiGatewayResult, type PayloadFormat } from './apigw.js';
import { type CallDeps, callFunction } from './call.js';
import type { CompatDeps } from './compat-deps.js';
import { LambdaError, readSignedRequest } from './lambda-auth.js';
import { type LambdaRequest, requestFor } from './lambda-request.js';

export const LAMBDA_API_PREFIX = '/2015-03-31/functions';
const ACCOUNT = '000000000000';
/** Lambda's limit on the log tail returned with LogType: Tail. */
const LOG_TAIL_BYTES = 4096;
const DEFAULT_MAX_ITEMS = 50;

const notFound = (arn: string) => new LambdaError(404, 'ResourceNotFoundException', `Function not found: ${arn}`);
const invalidParameter = (message: string) => new LambdaError(400, 'InvalidParameterValueException', message);

/**
 * The AWS Lambda API on the gateway, for the AWS SDKs and CLI pointed at Nimbus with
 * `endpoint`: Invoke, and the calls to list, get, create (from a zip) and delete
 * functions. Requests are signed with AWS Signature V4 using the admin token as the
 * secret access key. docs/compatibility.md#aws-lambda-api has the details.
 */
export async function handleLambdaApi(deps: CompatDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const requestId = randomUUID();
  try {
    await route(deps, req, res, requestId);
  } catch (err) {
    sendLambdaError(res, err, requestId);
  }
}

async function route(deps: CompatDeps, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
  const url = req.url ?? '/';
  const method = req.method ?? 'GET';
  const path = url.split('?')[0].slice(LAMBDA_API_PREFIX.length);
  const parts = path.split('/').filter(Boolean);
  const { body, caller } = await readSignedRequest(req, deps.token, bodyLimit(method, parts, req), deps.lambdaBodyBudget);
  const ctx: ApiContext = { deps, region: caller.region, requestId };
  const query = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');

  if (parts.length === 0) {
    if (method === 'GET') return sendJson(res, 200, listFunctions(ctx, query), requestId);
    if (method === 'POST') return sendJson(res, 201, await createFunction(ctx, parseJson(body)), requestId);
  } else {
    const target = functionTarget(ctx, parts[0], query.get('Qualifier'));
    if (parts.length === 1 && method === 'GET') {
      const record = existing(ctx, target);
      return sendJson(res, 200, { Configuration: configuration(ctx, record), Code: { RepositoryType: 'Nimbus' }, Tags: {} }, requestId);
    }
    if (parts.length === 1 && method === 'DELETE') {
      existing(ctx, target);
      await deps.registry.remove(target.name);
      res.writeHead(204, { 'x-amzn-requestid': requestId }).end();
      return;
    }
    if (parts.length === 2 && parts[1] === 'configuration' && method === 'GET') return sendJson(res, 200, configuration(ctx, existing(ctx, target)), requestId);
    if (parts.length === 2 && parts[1] === 'invocations' && method === 'POST') return invoke(ctx, target, req, res, body);
  }
  throw new LambdaError(404, 'UnknownOperationException', `Nimbus does not implement ${method} ${LAMBDA_API_PREFIX}${path}; see docs/compatibility.md`);
}

/** The most a request may carry for its operation, as on Lambda: the body is read no further. */
function bodyLimit(method: string, parts: string[], req: IncomingMessage): number {
  if (method === 'POST' && parts.length === 0) return MAX_LAMBDA_CREATE_BODY_BYTES;
  if (method === 'POST' && parts[1] === 'invocations') return req.headers['x-amz-invocation-type'] === 'Event' ? MAX_ASYNC_BODY_BYTES : MAX_REQUEST_BODY_BYTES;
  return MAX_LAMBDA_OTHER_BODY_BYTES;
}

interface ApiContext {
  deps: CompatDeps;
  region: string;
  requestId: string;
}

interface Target {
  name: string;
  qualifier: string | undefined;
  arn: string;
}

/** FunctionName as Lambda accepts it: a name, a full ARN, or a partial ARN, each with an optional qualifier. */
function functionTarget(ctx: ApiContext, segment: string, queryQualifier: string | null): Target {
  let raw: string;
  try {
    raw = decodeURIComponent(segment);
  } catch {
    raw = segment;
  }
  const p = raw.split(':');
  let name: string;
  let qualifier: string | undefined;
  if (p[0] === 'arn' && p.length >= 7 && p[2] === 'lambda' && p[5] === 'function') [name, qualifier] = [p[6], p[7]];
  else if (p.length >= 3 && p[1] === 'function') [name, qualifier] = [p[2], p[3]];
  else [name, qualifier] = [p[0], p[1]];
  qualifier = queryQualifier ?? qualifier;
  return { name, qualifier, arn: arnOf(ctx, name) + (qualifier ? `:${qualifier}` : '') };
}

const arnOf = (ctx: ApiContext, name: string) => `arn:aws:lambda:${ctx.region}:${ACCOUNT}:function:${name}`;

/** The function's record; only $LATEST (or the latest version's number) can be addressed. */
function existing(ctx: ApiContext, target: Target): FunctionRecord {
  const record = ctx.deps.store.getFunction(target.name);
  if (!record) throw notFound(target.arn);
  if (target.qualifier !== undefined && target.qualifier !== '$LATEST' && target.qualifier !== String(record.latest.version)) throw notFound(target.arn);
  return record;
}

function listFunctions(ctx: ApiContext, query: URLSearchParams): Record<string, unknown> {
  const rawMax = query.get('MaxItems');
  const max = rawMax === null ? DEFAULT_MAX_ITEMS : Number(rawMax);
  if (!Number.isInteger(max) || max < 1 || max > 10_000) throw invalidParameter('MaxItems must be a whole number from 1 to 10000');
  const marker = query.get('Marker');
  const all = ctx.deps.store.listFunctions().sort((a, b) => a.name.localeCompare(b.name));
  const start = marker ? all.findIndex((f) => f.name > marker) : 0;
  const page = start === -1 ? [] : all.slice(start, start + max);
  const out: Record<string, unknown> = { Functions: page.map((f) => configuration(ctx, f)) };
  if (start !== -1 && start + max < all.length) out.NextMarker = page.at(-1)?.name;
  return out;
}

let pythonVersion: string | undefined;
function runtimeName(runtime: string): string {
  if (runtime === 'node') return `nodejs${process.versions.node.split('.')[0]}.x`;
  if (runtime === 'python') {
    try {
      pythonVersion ??= execFileSync(findPython(), ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8', timeout: 5_000 }).trim();
    } catch {
      pythonVersion = '3';
    }
    return `python${pythonVersion}`;
  }
  return 'provided.al2023';
}

/** A FunctionConfiguration. Environment values are never listed, as everywhere in Nimbus. */
function configuration(ctx: ApiContext, f: FunctionRecord): Record<string, unknown> {
  const c = f.latest.config;
  const lastModified = new Date(f.updatedAt).toISOString().replace('Z', '+0000');
  const out: Record<string, unknown> = {
    FunctionName: f.name,
    FunctionArn: arnOf(ctx, f.name),
    Runtime: runtimeName(c.runtime),
    Role: `arn:aws:iam::${ACCOUNT}:role/nimbus`,
    Handler: c.handler ?? (c.exportName ? `${c.entry}#${c.exportName}` : c.entry),
    Description: '',
    Timeout: Math.ceil(c.timeout / 1000),
    MemorySize: c.memory,
    LastModified: lastModified,
    CodeSha256: Buffer.from(f.latest.sha256, 'hex').toString('base64'),
    Version: '$LATEST',
    RevisionId: String(f.latest.id),
    State: 'Active',
    LastUpdateStatus: 'Successful',
    PackageType: 'Zip',
    Architectures: [process.arch === 'arm64' ? 'arm64' : 'x86_64'],
  };
  const keys = Object.keys(c.env);
  if (keys.length > 0) out.Environment = { Variables: Object.fromEntries(keys.map((k) => [k, '(hidden)'])) };
  return out;
}

interface CreateRequest {
  FunctionName?: unknown;
  Runtime?: unknown;
  Handler?: unknown;
  Code?: { ZipFile?: unknown; S3Bucket?: unknown; ImageUri?: unknown };
  Timeout?: unknown;
  MemorySize?: unknown;
  Environment?: { Variables?: unknown };
  PackageType?: unknown;
}

/**
 * CreateFunction from a zip (Code.ZipFile). The settings become the bundle's
 * nimbus.yaml, so they are validated, versioned and shown like any other deploy's.
 */
async function createFunction(ctx: ApiContext, input: unknown): Promise<Record<string, unknown>> {
  const r = (input ?? {}) as CreateRequest;
  if (typeof r.FunctionName !== 'string' || r.FunctionName === '') throw invalidParameter('FunctionName is required');
  const name = functionTarget(ctx, r.FunctionName, null).name;
  try {
    validateFunctionName(name);
  } catch (err) {
    throw invalidParameter((err as Error).message);
  }
  if (r.PackageType !== undefined && r.PackageType !== 'Zip') throw invalidParameter('only PackageType Zip is supported: Nimbus runs no container images');
  if (typeof r.Code?.ZipFile !== 'string')
    throw invalidParameter('Code.ZipFile (the zip, base64-encoded) is required; S3 locations and images are not supported');
  if (typeof r.Runtime !== 'string') throw invalidParameter('Runtime is required (e.g. nodejs20.x, python3.11, provided.al2023)');
  let manifest: Record<string, unknown>;
  if (r.Runtime.startsWith('nodejs')) manifest = { runtime: 'node', style: 'lambda' };
  else if (r.Runtime.startsWith('python3')) manifest = { runtime: 'python', style: 'lambda' };
  else if (r.Runtime.startsWith('provided')) manifest = { runtime: 'process', style: 'lambda-runtime' };
  else throw invalidParameter(`Runtime ${r.Runtime} is not supported: use nodejs*, python3.* or provided.*`);
  if (typeof r.Handler === 'string' && r.Handler !== '') manifest.handler = r.Handler;
  else if (manifest.runtime !== 'process') throw invalidParameter('Handler is required (e.g. index.handler)');
  if (r.MemorySize !== undefined) manifest.memory = r.MemorySize;
  if (r.Timeout !== undefined) manifest.timeout = r.Timeout;
  if (r.Environment?.Variables !== undefined) manifest.env = r.Environment.Variables;
  if (ctx.deps.store.getFunction(name)) throw new LambdaError(409, 'ResourceConflictException', `Function already exist: ${name}`);

  const zip = Buffer.from(r.Code.ZipFile, 'base64');
  try {
    const bundle = readBundleZip(zip);
    const files: Record<string, Uint8Array> = {};
    for (const [path, data] of bundle.files) if (path !== 'nimbus.yaml' && path !== 'nimbus.yml' && path !== 'nimbus.json') files[path] = data;
    files['nimbus.yaml'] = Buffer.from(toYaml({ name, ...manifest }));
    const { record } = await ctx.deps.registry.deploy(name, zipSync(files));
    return configuration(ctx, record);
  } catch (err) {
    const e = toNimbusError(err);
    if (e.code === 'NIMBUS_INTERNAL') throw err;
    const details = e.details ? ` (${JSON.stringify(e.details)})` : '';
    throw invalidParameter(`${e.message}${details}`);
  }
}

const INVOCATION_TYPES = new Set(['RequestResponse', 'Event', 'DryRun']);

async function invoke(ctx: ApiContext, target: Target, req: IncomingMessage, res: ServerResponse, payload: Buffer): Promise<void> {
  const { deps, requestId } = ctx;
  existing(ctx, target);
  const spec = deps.registry.spec(target.name);
  if (!spec) throw notFound(target.arn);
  const type = String(req.headers['x-amz-invocation-type'] ?? 'RequestResponse');
  if (!INVOCATION_TYPES.has(type)) throw invalidParameter(`X-Amz-Invocation-Type must be RequestResponse, Event or DryRun; got ${JSON.stringify(type)}`);
  if (payload.length > 0) {
    try {
      JSON.parse(payload.toString('utf8'));
    } catch (err) {
      throw new LambdaError(400, 'InvalidRequestContentException', `Could not parse request body into json: ${(err as Error).message}`);
    }
  }
  const base = { requestId, sourceIp: req.socket.remoteAddress ?? '', protocol: `HTTP/${req.httpVersion}` };
  const request = (style: string) => requestFor(style, base, payload, type);
  if (type === 'DryRun') {
    res.writeHead(204, { 'x-amzn-requestid': requestId }).end();
    return;
  }
  if (type === 'Event') {
    // The body was read no further than MAX_ASYNC_BODY_BYTES (bodyLimit). Committed to the durable queue before the 202; retries and dead letters as for /async.
    const { id } = await deps.events.invokeAsync(spec, { method: 'POST', path: '/', headers: [], body: payload, sourceIp: base.sourceIp, format: 'lambda' });
    res.writeHead(202, { 'x-amzn-requestid': id, 'content-length': '0' }).end();
    return;
  }
  const started = performance.now();
  const outcome = await runForPayload(deps, spec, request, requestId);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-amzn-requestid': requestId,
    'x-amz-executed-version': '$LATEST',
  };
  if (outcome.functionError) headers['x-amz-function-error'] = 'Unhandled';
  if (String(req.headers['x-amz-log-type'] ?? 'None') === 'Tail')
    headers['x-amz-log-result'] = await logTail(deps, spec, requestId, performance.now() - started);
  res.writeHead(200, { ...headers, 'content-length': String(outcome.payload.length) });
  res.end(outcome.payload);
}

/** Lambda's error types for the platform's invocation failures. */
const ERROR_TYPES: Partial<Record<string, string>> = {
  NIMBUS_MEMORY_LIMIT: 'Runtime.OutOfMemory',
  NIMBUS_INSTANCE_EXITED: 'Runtime.ExitError',
  NIMBUS_LOAD_FAILED: 'Runtime.ImportModuleError',
  NIMBUS_HANDLER_NOT_FOUND: 'Runtime.HandlerNotFound',
  NIMBUS_INVALID_RESPONSE: 'Runtime.InvalidResponse',
};

async function runForPayload(
  deps: CallDeps,
  spec: FunctionSpec,
  request: (style: string) => LambdaRequest,
  requestId: string,
): Promise<{ payload: Buffer; functionError: boolean }> {
  const asJson = (value: unknown) => ({ payload: Buffer.from(JSON.stringify(value)), functionError: true });
  try {
    let apiGateway: PayloadFormat | undefined;
    const result = await callFunction(deps, spec, (style) => {
      const prepared = request(style);
      apiGateway = prepared.apiGateway;
      return prepared;
    });
    if (apiGateway) return { payload: Buffer.from(JSON.stringify(apiGatewayResult(apiGateway, result))), functionError: false };
    // A style that answers HTTP (Workers, Express, ...) failed if it answered 5xx.
    if (result.head.status >= 500) {
      return asJson({ errorType: 'HttpError', errorMessage: `the function answered ${result.head.status}: ${result.body.toString('utf8').slice(0, 1000)}` });
    }
    return { payload: result.body, functionError: false };
  } catch (err) {
    const e = toNimbusError(err);
    if (e.code === 'NIMBUS_FUNCTION_ERROR' || e.code === 'NIMBUS_UNHANDLED_REJECTION') {
      const d = e.details as { errorType: string; errorMessage: string };
      const trace = (e.functionStack ?? '').split('\n').filter((l) => l !== '');
      // The Python runtime calls it stackTrace, the Node one trace.
      return asJson({ errorType: d.errorType, errorMessage: d.errorMessage, [spec.runtime === 'python' ? 'stackTrace' : 'trace']: trace });
    }
    if (e.code === 'NIMBUS_FUNCTION_TIMEOUT') {
      return asJson({
        errorType: 'Sandbox.Timedout',
        errorMessage: `RequestId: ${requestId} Error: Task timed out after ${(spec.timeoutMs / 1000).toFixed(2)} seconds`,
      });
    }
    const errorType = ERROR_TYPES[e.code];
    if (errorType) return asJson({ errorType, errorMessage: e.message });
    throw e;
  }
}

/** The last 4 KB of the invocation's log, base64, framed by START/END/REPORT lines as on Lambda. */
async function logTail(deps: CompatDeps, spec: FunctionSpec, requestId: string, durationMs: number): Promise<string> {
  // Lines travel on the instance's stdout, beside the response: let the ones already sent arrive.
  await new Promise((r) => setImmediate(r));
  deps.logs.flush();
  const lines = deps.store.readLogs(spec.name, { requestId, limit: 1000 }).map((e) => e.line);
  const text = [
    `START RequestId: ${requestId} Version: $LATEST`,
    ...lines,
    `END RequestId: ${requestId}`,
    `REPORT RequestId: ${requestId}\tDuration: ${durationMs.toFixed(2)} ms\tBilled Duration: ${Math.max(1, Math.ceil(durationMs))} ms\tMemory Size: ${spec.memoryMB} MB`,
    '',
  ].join('\n');
  const bytes = Buffer.from(text);
  return bytes.subarray(Math.max(0, bytes.length - LOG_TAIL_BYTES)).toString('base64');
}

function parseJson(body: Buffer): unknown {
  try {
    return body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new LambdaError(400, 'InvalidRequestContentException', `Could not parse request body into json: ${(err as Error).message}`);
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown, requestId: string): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-amzn-requestid': requestId });
  res.end(body);
}

function sendLambdaError(res: ServerResponse, err: unknown, requestId: string): void {
  let e: LambdaError;
  if (err instanceof LambdaError) e = err;
  else {
    const n = toNimbusError(err);
    if (n.code === 'NIMBUS_INTERNAL') console.error('nimbus: internal error in the Lambda API', requestId, err);
    if (n.status === 429) e = new LambdaError(429, 'TooManyRequestsException', n.message, { Reason: 'ConcurrentInvocationLimitExceeded' });
    else if (n.status === 404) e = new LambdaError(404, 'ResourceNotFoundException', n.message);
    else if (n.status < 500) e = new LambdaError(400, 'InvalidParameterValueException', n.message);
    else e = new LambdaError(n.status === 503 ? 503 : 500, 'ServiceException', n.code === 'NIMBUS_INTERNAL' ? 'internal error' : n.message);
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  closeIfBodyUnread(res);
  const body = JSON.stringify({ Type: e.status >= 500 ? 'Service' : 'User', Message: e.message, ...e.extra });
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-amzn-errortype': e.type,
    'x-amzn-requestid': requestId,
  };
  if (e.status === 429 || e.status === 503) headers['retry-after'] = '1';
  res.writeHead(e.status, headers);
  res.end(body);
}
