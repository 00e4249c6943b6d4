import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  ADMIN_KEEP_ALIVE_TIMEOUT_MS,
  DEAD_LETTER_RETENTION_MS,
  DEFAULT_PIDS,
  DEFAULT_SCALE_WINDOW_MS,
  DEFAULT_TMP_MB,
  DEFAULT_UTILIZATION_PERCENT,
  INVOCATION_RETENTION_MS,
  MAX_BUNDLE_BYTES,
} from '../config/defaults.js';
import { functionNameFromPath } from '../config/manifest.js';
import type { CallbackMeta } from '../events/callbacks.js';
import type { InvokeMeta } from '../events/dispatcher.js';
import type { Events } from '../events/events.js';
import type { Message } from '../events/queue.js';
import type { RuntimeManager } from '../runtime/manager.js';
import { SERVER_OPTIONS } from '../shared/connection-limits.js';
import { NimbusError } from '../shared/errors.js';
import { readBody, sendError, sendJson } from '../shared/http.js';
import { checkResourceName, handleState } from '../state/http.js';
import type { StateStore } from '../state/state-store.js';
import type { FunctionRecord, LogEntry, Store } from '../store/store.js';
import type { LogBuffer } from '../telemetry/log-buffer.js';
import type { AdminHosts } from './admin-hosts.js';
import type { FunctionRegistry } from './registry.js';
import { handleSecrets } from './secrets-api.js';

export interface AdminDeps {
  token: string;
  /** The Host headers the admin API answers to (DNS rebinding). */
  hosts: AdminHosts;
  store: Store;
  registry: FunctionRegistry;
  runtime: RuntimeManager;
  logs: LogBuffer;
  events: Events;
  state: StateStore;
  info(): { version: string; gatewayUrl: string; adminUrl: string; dataDir: string };
}

const MAX_LOG_LIMIT = 10_000;
const DEFAULT_DLQ_LIMIT = 100;
const MAX_DLQ_LIMIT = 1_000;
const MAX_ADMIN_JSON_BYTES = 1024 * 1024;
const DEFAULT_LOG_LIMIT = 100;

/**
 * The admin API (docs/admin-api.md). Every route but /healthz needs
 * "Authorization: Bearer <token>".
 */
export function createAdminServer(deps: AdminDeps): Server {
  const expected = digest(deps.token);
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(deps, expected, req, res).catch((err: unknown) => sendError(res, err));
  };
  const server = createServer(SERVER_OPTIONS, onRequest);
  // "Expect: 100-continue" (curl sends it for large uploads): the client waits for the
  // go-ahead before sending the body, so only an authorized request gets one; a refused
  // one gets its 401 instead and never sends the body.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (deps.hosts.allows(req.headers.host) && isAuthorized(req, expected)) res.writeContinue();
    onRequest(req, res);
  });
  // Bucket uploads and downloads stream for as long as they take (Node would cut a
  // request at 300 s); headers must still arrive within headersTimeout.
  server.requestTimeout = 0;
  server.keepAliveTimeout = ADMIN_KEEP_ALIVE_TIMEOUT_MS;
  return server;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Before the token: a page re-pointed at this address by DNS rebinding is refused whatever it sends. */
function checkHost(hosts: AdminHosts, req: IncomingMessage): void {
  if (hosts.allows(req.headers.host)) return;
  const host = req.headers.host === undefined ? 'no Host header' : `Host ${JSON.stringify(req.headers.host.slice(0, 200))}`;
  throw new NimbusError('NIMBUS_HOST_NOT_ALLOWED', `the admin API does not answer to ${host}`);
}

function isAuthorized(req: IncomingMessage, expected: Buffer): boolean {
  try {
    authorize(req, expected);
    return true;
  } catch {
    return false;
  }
}

/** Runs before any route, so before any body is read: a refused request costs only its head. */
function authorize(req: IncomingMessage, expected: Buffer): void {
  const header = req.headers.authorization;
  if (!header) throw new NimbusError('NIMBUS_AUTH_REQUIRED', 'this endpoint needs the admin token');
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match || !timingSafeEqual(digest(match[1]), expected)) throw new NimbusError('NIMBUS_AUTH_INVALID', 'the admin token is not valid');
}

async function handle(deps: AdminDeps, expected: Buffer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const method = req.method ?? 'GET';
  // Liveness is open to any Host: it tells nothing, and probes send Host headers nobody can list in advance.
  if (url.pathname === '/healthz') return sendJson(res, 200, { status: 'ok' });
  checkHost(deps.hosts, req);
  authorize(req, expected);
  const parts = url.pathname.split('/').filter(Boolean);
  if (parts[0] !== 'v1') throw new NimbusError('NIMBUS_NOT_FOUND', `no admin route ${url.pathname}`);
  if (parts.length === 2 && parts[1] === 'info') {
    allow(method, ['GET']);
    return sendJson(res, 200, deps.info());
  }
  if (parts.length === 3 && parts[1] === 'invocations') {
    allow(method, ['GET']);
    const m = await deps.events.invocation(parts[2]);
    if (!m) {
      throw new NimbusError('NIMBUS_INVOCATION_NOT_FOUND', `no invocation ${JSON.stringify(parts[2].slice(0, 80))}`, {
        hint: `invocation records are kept for ${INVOCATION_RETENTION_MS / 3_600_000} h after they finish (dead letters for ${DEAD_LETTER_RETENTION_MS / 86_400_000} days); check the id from the 202 response`,
      });
    }
    const callbackId = (m.result as { callbackId?: unknown } | null)?.callbackId;
    const callback = typeof callbackId === 'string' ? await deps.events.callback(callbackId) : undefined;
    return sendJson(res, 200, { invocation: { ...invocationView(m), callback: callback ? callbackView(callback) : null } });
  }
  if (parts.length === 2 && (parts[1] === 'kv' || parts[1] === 'buckets' || parts[1] === 'topics')) {
    allow(method, ['GET']);
    if (parts[1] === 'kv') return sendJson(res, 200, { namespaces: deps.state.kvNamespaces() });
    if (parts[1] === 'buckets') return sendJson(res, 200, { buckets: deps.state.buckets() });
    return sendJson(res, 200, { topics: topics(deps) });
  }
  const resolve = (kind: string, name: string) => checkResourceName(kind === 'kv' ? 'namespace' : kind, name);
  if (await handleState({ state: deps.state, events: deps.events }, resolve, method, url, req, res)) return;
  if (parts[1] !== 'functions') throw new NimbusError('NIMBUS_NOT_FOUND', `no admin route ${url.pathname}`);
  if (parts.length === 2) {
    allow(method, ['GET']);
    return sendJson(res, 200, { functions: deps.store.listFunctions().map((f) => view(deps, f)) });
  }
  const name = functionNameFromPath(parts[2]);
  if (parts.length === 3) {
    allow(method, ['GET', 'PUT', 'DELETE']);
    if (method === 'PUT') return deploy(deps, name, req, res);
    if (method === 'DELETE') {
      if (!(await deps.registry.remove(name))) throw new NimbusError('NIMBUS_FUNCTION_NOT_FOUND', `function "${name}" does not exist`);
      res.writeHead(204).end();
      return;
    }
    return sendJson(res, 200, { function: view(deps, found(deps, name), true) });
  }
  if (parts.length === 4 && parts[3] === 'logs') {
    allow(method, ['GET']);
    found(deps, name);
    return logs(deps, name, url, req, res);
  }
  if (parts[3] === 'dlq' && parts.length <= 5) return deadLetters(deps, name, parts[4], method, url, req, res);
  if (parts[3] === 'secrets' && parts.length <= 5) return handleSecrets(deps.registry, name, parts[4], method, req, res);
  throw new NimbusError('NIMBUS_NOT_FOUND', `no admin route ${url.pathname}`);
}

/**
 * A function's dead letters: GET lists them (oldest first, `limit`, `after` cursor),
 * DELETE purges them (all, or `?id=` repeated), POST .../redrive queues them again
 * (all, or the `ids` in the JSON body) with the function's current retries and maxEventAge.
 */
async function deadLetters(deps: AdminDeps, name: string, action: string | undefined, method: string, url: URL, req: IncomingMessage, res: ServerResponse) {
  const spec = deps.registry.spec(name);
  if (!spec) throw new NimbusError('NIMBUS_FUNCTION_NOT_FOUND', `function "${name}" does not exist`);
  if (action === 'redrive') {
    allow(method, ['POST']);
    const ids = parseIds(await readBody(req, MAX_ADMIN_JSON_BYTES, 'NIMBUS_PAYLOAD_TOO_LARGE'));
    return sendJson(res, 200, { redriven: await deps.events.redrive(spec, ids) });
  }
  if (action !== undefined) throw new NimbusError('NIMBUS_NOT_FOUND', `no admin route ${url.pathname}`);
  allow(method, ['GET', 'DELETE']);
  const ids = url.searchParams.getAll('id');
  if (method === 'DELETE') return sendJson(res, 200, { purged: await deps.events.purgeDead(name, ids.length > 0 ? ids : undefined) });
  const limit = Math.max(1, intParam(url, 'limit', DEFAULT_DLQ_LIMIT, MAX_DLQ_LIMIT));
  const after = url.searchParams.get('after') ?? undefined;
  const page = await deps.events.listDead(name, { limit, after });
  return sendJson(res, 200, { deadLetters: page.map(invocationView), next: page.length === limit ? page[page.length - 1].id : null });
}

function parseIds(body: Buffer): string[] | undefined {
  if (body.length === 0) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new NimbusError('NIMBUS_INVALID_REQUEST', 'the body must be JSON: {} for every dead letter, or {"ids": ["<id>", ...]}');
  }
  const ids = (parsed as { ids?: unknown }).ids;
  if (ids === undefined) return undefined;
  if (!Array.isArray(ids) || !ids.every((i) => typeof i === 'string'))
    throw new NimbusError('NIMBUS_INVALID_REQUEST', '"ids" must be a list of invocation ids');
  return ids;
}

/** An invocation record as the API shows it. */
function invocationView(m: Message): Record<string, unknown> {
  const meta = m.meta as unknown as InvokeMeta;
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return {
    id: m.id,
    function: meta.fn,
    status: m.status,
    attempts: m.attempts,
    maxAttempts: m.maxAttempts,
    request: { method: meta.method, path: meta.path, bodyBytes: m.body.length, callbackUrl: meta.callbackUrl ?? null, format: meta.format },
    enqueuedAt: iso(m.enqueuedAt),
    nextAttemptAt: m.status === 'queued' ? iso(m.availableAt) : null,
    expiresAt: iso(m.expiresAt),
    completedAt: iso(m.completedAt),
    lastError: m.lastError,
    result: m.result,
  };
}

/** The callback an invocation's result was sent to, and how that went. */
function callbackView(m: Message): Record<string, unknown> {
  const meta = m.meta as unknown as CallbackMeta;
  return {
    id: m.id,
    url: meta.url,
    status: m.status,
    attempts: m.attempts,
    maxAttempts: m.maxAttempts,
    lastError: m.lastError,
    result: m.result,
    completedAt: m.completedAt === null ? null : new Date(m.completedAt).toISOString(),
  };
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method))
    throw new NimbusError('NIMBUS_METHOD_NOT_ALLOWED', `${method} is not allowed here; use ${methods.join(', ')}`, { headers: { allow: methods.join(', ') } });
}

function found(deps: AdminDeps, name: string): FunctionRecord {
  const record = deps.store.getFunction(name);
  if (!record) throw new NimbusError('NIMBUS_FUNCTION_NOT_FOUND', `function "${name}" does not exist`);
  return record;
}

async function deploy(deps: AdminDeps, name: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim();
  if (type !== 'application/zip') {
    req.resume();
    throw new NimbusError('NIMBUS_UNSUPPORTED_MEDIA_TYPE', `expected Content-Type application/zip, got ${JSON.stringify(type || '(none)')}`);
  }
  const zip = await readBody(req, MAX_BUNDLE_BYTES, 'NIMBUS_BUNDLE_TOO_LARGE');
  const { record, created, style } = await deps.registry.deploy(name, zip);
  sendJson(res, created ? 201 : 200, { created, style, function: view(deps, record, true) });
}

/** Every topic some function subscribes to, with its subscribers. */
function topics(deps: AdminDeps): { name: string; subscribers: string[] }[] {
  const byTopic = new Map<string, string[]>();
  for (const spec of deps.registry.all()) {
    for (const t of spec.triggers.topics) byTopic.set(t.topic, [...(byTopic.get(t.topic) ?? []), spec.name]);
  }
  return [...byTopic].sort(([a], [b]) => a.localeCompare(b)).map(([name, subscribers]) => ({ name, subscribers: subscribers.sort() }));
}

/** The public view of a function: env values are never listed, only their names. */
function view(deps: AdminDeps, f: FunctionRecord, withVersions = false): Record<string, unknown> {
  const c = f.latest.config;
  const pool = deps.runtime.current(f.name);
  let busy = 0;
  let ready = 0;
  for (const i of pool?.instances ?? []) {
    ready++;
    busy += i.busy;
  }
  const out: Record<string, unknown> = {
    name: f.name,
    version: f.latest.version,
    sha256: f.latest.sha256,
    url: `${deps.info().gatewayUrl}/fn/${f.name}`,
    runtime: c.runtime,
    // What its instances run in now: a thread function runs as processes while the platform does not allow threads.
    isolation: deps.registry.spec(f.name)?.isolation ?? c.isolation ?? 'process',
    style: c.detectedStyle ?? c.style ?? null,
    handler: c.exportName ? `${c.entry}#${c.exportName}` : c.entry,
    memory: c.memory,
    timeoutMs: c.timeout,
    tmp: c.tmp ?? DEFAULT_TMP_MB,
    pids: c.pids ?? DEFAULT_PIDS,
    network: c.network ?? { outbound: true, allow: [] },
    scale: {
      min: c.scale.min,
      max: c.scale.max,
      concurrency: c.scale.concurrency,
      idleTimeoutMs: c.scale.idleTimeout,
      windowMs: c.scale.window ?? DEFAULT_SCALE_WINDOW_MS,
      utilization: c.scale.utilization ?? DEFAULT_UTILIZATION_PERCENT,
    },
    envKeys: Object.keys(c.env),
    triggers: c.triggers ?? { cron: [], topics: [], buckets: [] },
    bindings: c.bindings ?? {},
    instances: { ready, busy, coldStarts: pool?.coldStarts ?? 0, ...(pool ? { autoscaler: pool.autoscaler } : {}) },
    createdAt: new Date(f.createdAt).toISOString(),
    updatedAt: new Date(f.updatedAt).toISOString(),
  };
  if (withVersions) {
    out.versions = deps.store.listVersions(f.name).map((v) => ({ version: v.version, sha256: v.sha256, createdAt: new Date(v.createdAt).toISOString() }));
  }
  return out;
}

function intParam(url: URL, key: string, fallback: number, max: number): number {
  const raw = url.searchParams.get(key);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > max)
    throw new NimbusError('NIMBUS_INVALID_REQUEST', `${key} must be a whole number from 0 to ${max}; got ${JSON.stringify(raw)}`);
  return n;
}

const logView = (e: LogEntry) => ({ id: e.id, ts: new Date(e.ts).toISOString(), version: e.version, requestId: e.requestId, stream: e.stream, line: e.line });

/** Recent lines as JSON, or with follow=1 an NDJSON stream that stays open. */
function logs(deps: AdminDeps, name: string, url: URL, req: IncomingMessage, res: ServerResponse): void {
  const limit = intParam(url, 'limit', DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT);
  const after = intParam(url, 'after', 0, Number.MAX_SAFE_INTEGER);
  const requestId = url.searchParams.get('requestId') ?? undefined;
  deps.logs.flush();
  const entries = deps.store.readLogs(name, { afterId: after, limit, requestId });
  if (url.searchParams.get('follow') !== '1') {
    sendJson(res, 200, { logs: entries.map(logView), next: entries.at(-1)?.id ?? after });
    return;
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  for (const e of entries) res.write(`${JSON.stringify(logView(e))}\n`);
  const stop = deps.logs.follow(name, (batch) => {
    for (const e of batch) if (!requestId || e.requestId === requestId) res.write(`${JSON.stringify(logView(e))}\n`);
  });
  // A comment line now and then keeps proxies from closing an idle follow.
  const ping = setInterval(() => res.write('\n'), 15_000);
  req.on('close', () => {
    stop();
    clearInterval(ping);
  });
}
