import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { validateFunctionName } from '../config/manifest.js';
import { closeIfBodyUnread, readBody } from '../shared/http.js';
import type { FunctionRecord, LogEntry } from '../store/store.js';
import { NIMBUS_VERSION } from '../version.js';
import type { CompatDeps } from './compat-deps.js';

/** The user name `faas-cli login` sends; the password is the admin token. */
export const OPENFAAS_USER = 'admin';
const NAMESPACE = 'openfaas-fn';
const MAX_LOG_LINES = 10_000;

/** OpenFaaS answers errors in plain text with the status code. */
class FaasError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * The OpenFaaS gateway's /system API (faas-cli and the OpenFaaS UI use it): list and
 * describe functions, delete one, read logs, report the provider. Basic auth as
 * OpenFaaS's: user "admin", the admin token as password. Functions are invoked on
 * /function/<name> by the gateway itself, without auth, as on OpenFaaS.
 */
export async function handleOpenFaasSystem(deps: CompatDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    await route(deps, req, res);
  } catch (err) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const e = err instanceof FaasError ? err : new FaasError(500, err instanceof Error ? err.message : String(err));
    if (!(err instanceof FaasError)) console.error('nimbus: internal error in the OpenFaaS API', err);
    closeIfBodyUnread(res);
    const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
    if (e.status === 401) headers['www-authenticate'] = 'Basic realm="Restricted"';
    res.writeHead(e.status, headers).end(`${e.message}\n`);
  }
}

export function isOpenFaasAuthorized(deps: CompatDeps, req: IncomingMessage): boolean {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(req.headers.authorization ?? '');
  const [user, ...rest] = m ? Buffer.from(m[1], 'base64').toString('utf8').split(':') : [];
  const password = rest.join(':');
  return user === OPENFAAS_USER && timingSafeEqual(digest(password), digest(deps.token));
}

/** Runs before any route, so before any body is read. */
function authorize(deps: CompatDeps, req: IncomingMessage): void {
  if (!isOpenFaasAuthorized(deps, req)) throw new FaasError(401, 'invalid credentials');
}

async function route(deps: CompatDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  authorize(deps, req);
  const url = new URL(req.url ?? '/', 'http://gateway');
  const method = req.method ?? 'GET';
  const path = url.pathname.replace(/\/+$/, '');
  if (path === '/system/functions') {
    if (method === 'GET')
      return json(
        res,
        200,
        deps.store.listFunctions().map((f) => status(deps, f)),
      );
    if (method === 'DELETE') {
      const body = await readBody(req, 64 * 1024, 'NIMBUS_PAYLOAD_TOO_LARGE');
      let name: unknown;
      try {
        name = (JSON.parse(body.toString('utf8')) as { functionName?: unknown }).functionName;
      } catch {
        throw new FaasError(400, 'the body must be JSON: {"functionName": "<name>"}');
      }
      if (typeof name !== 'string' || name === '') throw new FaasError(400, 'functionName is required');
      if (!(await deps.registry.remove(safeName(name)))) throw new FaasError(404, `function ${name} not found`);
      res.writeHead(202).end();
      return;
    }
    if (method === 'POST' || method === 'PUT') {
      req.resume();
      throw new FaasError(501, 'Nimbus deploys functions from source, not container images: use `nimbus deploy <folder>`');
    }
    throw new FaasError(405, `method ${method} is not allowed on /system/functions`);
  }
  const one = /^\/system\/function\/([^/]+)$/.exec(path);
  if (one && method === 'GET') {
    const name = safeName(decodeURIComponent(one[1]));
    const record = deps.store.getFunction(name);
    if (!record) throw new FaasError(404, `function ${name} not found`);
    return json(res, 200, status(deps, record));
  }
  if (path === '/system/logs' && method === 'GET') return logs(deps, url, req, res);
  if (path === '/system/info' && method === 'GET') {
    return json(res, 200, {
      provider: { provider: 'nimbus', orchestration: 'local', version: { release: NIMBUS_VERSION, sha: '' } },
      version: { release: NIMBUS_VERSION, sha: '', commit_message: '' },
      arch: process.arch,
    });
  }
  if (path === '/system/namespaces' && method === 'GET') return json(res, 200, [NAMESPACE]);
  throw new FaasError(404, `Nimbus does not implement ${method} ${path}; see docs/compatibility.md`);
}

function safeName(name: string): string {
  try {
    return validateFunctionName(name);
  } catch (err) {
    throw new FaasError(400, (err as Error).message);
  }
}

/** A FunctionStatus as the OpenFaaS provider API describes it. Environment values are never listed. */
function status(deps: CompatDeps, f: FunctionRecord): Record<string, unknown> {
  const c = f.latest.config;
  const pool = deps.runtime.current(f.name);
  let available = 0;
  for (const i of pool?.instances ?? []) if (i.state === 'ready') available++;
  return {
    name: f.name,
    image: `nimbus/${c.runtime}:${f.latest.version}`,
    namespace: NAMESPACE,
    invocationCount: pool?.invocations ?? 0,
    replicas: pool?.size ?? 0,
    availableReplicas: available,
    envProcess: typeof c.command === 'string' ? c.command : Array.isArray(c.command) ? c.command.join(' ') : (c.handler ?? c.entry),
    labels: { 'nimbus.version': String(f.latest.version) },
    annotations: {},
    createdAt: new Date(f.createdAt).toISOString(),
  };
}

const logLine = (e: LogEntry) =>
  `${JSON.stringify({ name: e.name, namespace: NAMESPACE, instance: `${e.name}-v${e.version ?? 0}`, timestamp: new Date(e.ts).toISOString(), text: e.line })}\n`;

/** GET /system/logs?name=&tail=&since=&follow=: newline-delimited JSON messages. */
function logs(deps: CompatDeps, url: URL, req: IncomingMessage, res: ServerResponse): void {
  const name = safeName(url.searchParams.get('name') ?? '');
  if (!deps.store.getFunction(name)) throw new FaasError(404, `function ${name} not found`);
  const rawTail = url.searchParams.get('tail');
  const tail = rawTail === null || rawTail === '' ? MAX_LOG_LINES : Number(rawTail);
  if (!Number.isInteger(tail) || tail < 0) throw new FaasError(400, 'tail must be a whole number of lines');
  const rawSince = url.searchParams.get('since');
  const since = rawSince ? Date.parse(rawSince) : 0;
  if (Number.isNaN(since)) throw new FaasError(400, 'since must be an RFC 3339 time, e.g. 2024-01-02T15:04:05Z');
  deps.logs.flush();
  let entries = deps.store.readLogs(name, { limit: MAX_LOG_LINES }).filter((e) => e.ts >= since);
  // tail=0 on OpenFaaS means every line.
  if (tail > 0) entries = entries.slice(-tail);
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  for (const e of entries) res.write(logLine(e));
  if (url.searchParams.get('follow') !== 'true') {
    res.end();
    return;
  }
  const stop = deps.logs.follow(name, (batch) => {
    for (const e of batch) res.write(logLine(e));
  });
  req.on('close', stop);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
