import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_PUBLISH_BATCH, MAX_PUBLISH_BATCH_JSON_BYTES, MAX_TOPIC_MESSAGE_BYTES } from '../config/defaults.js';
import { RESOURCE_NAME_PATTERN } from '../config/triggers.js';
import type { Events, TopicMessage } from '../events/events.js';
import { NimbusError } from '../shared/errors.js';
import { readBody, sendJson } from '../shared/http.js';
import { MAX_KV_VALUE_BYTES } from './common.js';
import type { ObjectInfo, StateStore } from './state-store.js';

export interface StateDeps {
  state: StateStore;
  events: Events;
}

/**
 * Which namespace, bucket or topic a name in the URL stands for. The admin API takes
 * names as they are; a function's state endpoint takes its binding names and refuses
 * anything it is not bound to.
 */
export type Resolve = (kind: 'kv' | 'bucket' | 'topic', name: string) => string;

const META_PREFIX = 'x-nimbus-meta-';

/**
 * The state routes (docs/state.md), the same for the admin API and for functions:
 *   /v1/kv/<ns>/keys[/<key>]            list; GET, PUT (?ttl=s | ?expiration=epoch-s), DELETE a value
 *   /v1/buckets/<b>/objects[/<key>]     list; GET (Range), HEAD, PUT (streamed), DELETE an object
 *   /v1/topics/<t>/messages | /batch    publish one message (the body) or a JSON batch
 * Keys are the rest of the path, percent-decoded. The path is read as the client sent it
 * (req.url), not as URL parsing normalises it, so "a/../b" and "%2E" stay part of a key
 * instead of walking up the path. Returns false for other paths.
 */
export async function handleState(deps: StateDeps, resolve: Resolve, method: string, url: URL, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  const raw = (req.url ?? '/').split('?', 1)[0];
  const m = /^\/v1\/(kv|buckets|topics)\/([^/]+)\/(keys|objects|messages|batch)(?:\/(.*))?$/s.exec(raw);
  if (!m) return false;
  const [, area, rawName, what, rawKey] = m;
  const kind = area === 'kv' ? 'kv' : area === 'buckets' ? 'bucket' : 'topic';
  const expected = kind === 'kv' ? 'keys' : kind === 'bucket' ? 'objects' : undefined;
  if (expected !== undefined ? what !== expected : what !== 'messages' && what !== 'batch') return false;
  const name = resolve(kind, decode(rawName, 'name'));
  const key = rawKey === undefined || rawKey === '' ? undefined : decode(rawKey, 'key');
  if (kind === 'kv') await kv(deps.state, name, key, method, url, req, res);
  else if (kind === 'bucket') await bucket(deps.state, name, key, method, url, req, res);
  else if (key !== undefined) return false;
  else await publish(deps.events, name, what === 'batch', method, req, res);
  return true;
}

function decode(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new NimbusError('NIMBUS_INVALID_KEY', `the ${what} in the URL has a malformed %-escape`);
  }
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method))
    throw new NimbusError('NIMBUS_METHOD_NOT_ALLOWED', `use ${methods.join(', ')} here`, { headers: { allow: methods.join(', ') } });
}

function listOpts(url: URL): { prefix?: string; cursor?: string; limit?: number } {
  const limit = url.searchParams.get('limit');
  const n = limit === null ? undefined : Number(limit);
  if (n !== undefined && (!Number.isInteger(n) || n < 1)) throw new NimbusError('NIMBUS_INVALID_REQUEST', 'limit must be a whole number from 1 to 1000');
  return { prefix: url.searchParams.get('prefix') ?? undefined, cursor: url.searchParams.get('cursor') ?? undefined, limit: n };
}

async function kv(state: StateStore, ns: string, key: string | undefined, method: string, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (key === undefined) {
    allow(method, ['GET']);
    const page = state.kvList(ns, listOpts(url));
    const keys = page.keys.map((k) => ({ name: k.name, expiration: k.expiresAt === null ? null : Math.floor(k.expiresAt / 1000) }));
    return sendJson(res, 200, { keys, cursor: page.cursor ?? null, complete: page.complete });
  }
  allow(method, ['GET', 'HEAD', 'PUT', 'DELETE']);
  if (method === 'PUT') {
    const expiresAt = expiryFrom(url);
    const value = await readBody(req, MAX_KV_VALUE_BYTES, 'NIMBUS_PAYLOAD_TOO_LARGE');
    state.kvPut(ns, key, value, expiresAt === undefined ? {} : { expiresAt });
    res.writeHead(204).end();
    return;
  }
  if (method === 'DELETE') {
    state.kvDelete(ns, key);
    res.writeHead(204).end();
    return;
  }
  const entry = state.kvGet(ns, key);
  if (!entry) throw new NimbusError('NIMBUS_KEY_NOT_FOUND', `no key ${JSON.stringify(key.slice(0, 200))} in namespace "${ns}"`);
  const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'content-length': entry.value.length };
  if (entry.expiresAt !== null) headers['x-nimbus-expiration'] = Math.floor(entry.expiresAt / 1000);
  res.writeHead(200, headers);
  res.end(method === 'HEAD' ? undefined : entry.value);
}

/** ?ttl=<seconds> or ?expiration=<epoch seconds>, as Workers KV's expirationTtl and expiration. */
function expiryFrom(url: URL): number | undefined {
  const ttl = url.searchParams.get('ttl');
  const at = url.searchParams.get('expiration');
  if (ttl !== null) {
    const s = Number(ttl);
    if (!Number.isFinite(s) || s < 1)
      throw new NimbusError('NIMBUS_INVALID_REQUEST', `ttl must be a number of seconds, at least 1 (got ${JSON.stringify(ttl)})`);
    return Date.now() + s * 1000;
  }
  if (at !== null) {
    const s = Number(at);
    if (!Number.isFinite(s) || s * 1000 <= Date.now())
      throw new NimbusError('NIMBUS_INVALID_REQUEST', 'expiration must be a time in the future, in seconds since the epoch');
    return s * 1000;
  }
  return undefined;
}

/** An object's description, as the PUT and list responses show it. */
export function objectView(o: ObjectInfo): Record<string, unknown> {
  return {
    key: o.key,
    size: o.size,
    etag: o.etag,
    contentType: o.contentType,
    customMetadata: o.customMetadata,
    uploaded: new Date(o.uploadedAt).toISOString(),
  };
}

function objectHeaders(o: ObjectInfo): Record<string, string | number> {
  const headers: Record<string, string | number> = {
    etag: `"${o.etag}"`,
    'last-modified': new Date(o.uploadedAt).toUTCString(),
    'accept-ranges': 'bytes',
    'content-type': o.contentType ?? 'application/octet-stream',
  };
  for (const [k, v] of Object.entries(o.customMetadata)) headers[`${META_PREFIX}${k}`] = encodeURIComponent(v);
  return headers;
}

async function bucket(
  state: StateStore,
  b: string,
  key: string | undefined,
  method: string,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (key === undefined) {
    allow(method, ['GET']);
    const page = state.listObjects(b, { ...listOpts(url), delimiter: url.searchParams.get('delimiter') ?? undefined });
    return sendJson(res, 200, {
      objects: page.objects.map(objectView),
      delimitedPrefixes: page.delimitedPrefixes,
      cursor: page.cursor ?? null,
      truncated: page.truncated,
    });
  }
  allow(method, ['GET', 'HEAD', 'PUT', 'DELETE']);
  if (method === 'PUT') {
    const customMetadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (k.startsWith(META_PREFIX) && typeof v === 'string') customMetadata[k.slice(META_PREFIX.length)] = decode(v, 'metadata');
    const info = await state.putObject(b, key, req, { contentType: req.headers['content-type'], customMetadata });
    return sendJson(res, 200, { object: objectView(info) });
  }
  if (method === 'DELETE') {
    await state.deleteObject(b, key);
    res.writeHead(204).end();
    return;
  }
  const notFound = () => new NimbusError('NIMBUS_OBJECT_NOT_FOUND', `no object ${JSON.stringify(key.slice(0, 200))} in bucket "${b}"`);
  if (method === 'HEAD') {
    const info = state.headObject(b, key);
    if (!info) throw notFound();
    res.writeHead(200, { ...objectHeaders(info), 'content-length': info.size }).end();
    return;
  }
  const head = state.headObject(b, key);
  if (!head) throw notFound();
  const range = parseRange(req.headers.range, head.size);
  const found = state.getObject(b, key, range);
  if (!found) throw notFound();
  const headers = objectHeaders(found.info);
  if (range) {
    const end = range.offset + (range.length ?? found.info.size - range.offset) - 1;
    res.writeHead(206, { ...headers, 'content-length': end - range.offset + 1, 'content-range': `bytes ${range.offset}-${end}/${found.info.size}` });
  } else res.writeHead(200, { ...headers, 'content-length': found.info.size });
  // A read that fails half way cuts the response (its length promised more) rather than hanging it.
  found.body.on('error', (err) => res.destroy(err));
  found.body.pipe(res);
  await new Promise<void>((done) => {
    res.on('close', () => {
      found.body.destroy();
      done();
    });
  });
}

/**
 * One "bytes=" range of a known size; anything else is ignored (the whole object is
 * sent), as servers may. A range that selects none of a non-empty object's bytes is 416 with "bytes *\/<size>".
 */
function parseRange(header: string | undefined, size: number): { offset: number; length?: number } | undefined {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  // An empty object is sent whole: a range of nothing is not worth an error.
  if (!m || (m[1] === '' && m[2] === '') || size === 0) return undefined;
  const unsatisfiable = (why: string) =>
    new NimbusError('NIMBUS_RANGE_NOT_SATISFIABLE', `${why}; the object has ${size} bytes`, { headers: { 'content-range': `bytes */${size}` } });
  if (m[1] === '') {
    const n = Math.min(Number(m[2]), size);
    if (n === 0) throw unsatisfiable(`the range ${header} selects no bytes`);
    return { offset: size - n, length: n };
  }
  const start = Number(m[1]);
  if (start >= size) throw unsatisfiable(`the range starts at byte ${start}`);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (end < start) return undefined;
  return { offset: start, length: end - start + 1 };
}

async function publish(events: Events, topic: string, batch: boolean, method: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  allow(method, ['POST']);
  const key = req.headers['idempotency-key'];
  const idempotencyKey = typeof key === 'string' && key !== '' ? key : undefined;
  let messages: TopicMessage[];
  if (!batch) {
    const body = await readBody(req, MAX_TOPIC_MESSAGE_BYTES, 'NIMBUS_PAYLOAD_TOO_LARGE');
    messages = [{ body, contentType: req.headers['content-type'] ?? 'application/octet-stream' }];
  } else {
    messages = parseBatch(await readBody(req, MAX_PUBLISH_BATCH_JSON_BYTES, 'NIMBUS_PAYLOAD_TOO_LARGE'));
  }
  const result = await events.publish(topic, messages, idempotencyKey);
  sendJson(res, 202, { topic, ids: result.ids, subscribers: result.subscribers });
}

/**
 * {"messages": [{"body": ..., "contentType"?: "...", "encoding"?: "base64"}]}: a string
 * body is the message itself (text/plain unless contentType says otherwise), base64 is
 * decoded, and any other JSON value is sent as application/json.
 */
function parseBatch(raw: Buffer): TopicMessage[] {
  const bad = (why: string) =>
    new NimbusError('NIMBUS_INVALID_REQUEST', `a batch is {"messages": [{"body": ..., "contentType"?: ..., "encoding"?: "base64"}, ...]}: ${why}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw bad('the body is not JSON');
  }
  const list = (parsed as { messages?: unknown })?.messages;
  if (!Array.isArray(list) || list.length === 0) throw bad('"messages" must be a non-empty list');
  if (list.length > MAX_PUBLISH_BATCH) throw bad(`at most ${MAX_PUBLISH_BATCH} messages per batch (got ${list.length})`);
  return list.map((m, i) => {
    if (!m || typeof m !== 'object' || !('body' in m)) throw bad(`message ${i} has no "body"`);
    const { body, contentType, encoding } = m as { body: unknown; contentType?: unknown; encoding?: unknown };
    if (encoding !== undefined && encoding !== 'base64') throw bad(`message ${i}: encoding must be "base64" or left out`);
    let bytes: Buffer;
    let type: string;
    if (encoding === 'base64') {
      if (typeof body !== 'string') throw bad(`message ${i}: a base64 body must be a string`);
      bytes = Buffer.from(body, 'base64');
      type = typeof contentType === 'string' ? contentType : 'application/octet-stream';
    } else if (typeof body === 'string') {
      // A string is the message as it is (JSON text too, when contentType says so).
      bytes = Buffer.from(body);
      type = typeof contentType === 'string' ? contentType : 'text/plain';
    } else {
      bytes = Buffer.from(JSON.stringify(body));
      type = 'application/json';
    }
    if (bytes.length > MAX_TOPIC_MESSAGE_BYTES)
      throw new NimbusError('NIMBUS_PAYLOAD_TOO_LARGE', `message ${i} is larger than ${MAX_TOPIC_MESSAGE_BYTES} bytes`);
    return { body: bytes, contentType: type };
  });
}

/** Names of namespaces, buckets and topics follow the function-name rule. */
export function checkResourceName(kind: string, name: string): string {
  if (!RESOURCE_NAME_PATTERN.test(name)) {
    throw new NimbusError(
      'NIMBUS_INVALID_NAME',
      `invalid ${kind} name ${JSON.stringify(name.slice(0, 80))}: use 1-63 of a-z, 0-9 and "-", starting with a letter`,
    );
  }
  return name;
}
