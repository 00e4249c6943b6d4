import type { FunctionInfo, Invocation, InvocationResult, LoadedFunction } from '../invocation.js';
import { headerPairs } from '../invocation.js';
import { readCloudEvent } from './cloudevent.js';

type KnativeHandler = (context: Record<string, unknown>, body: unknown) => unknown;

const BASE_HEADERS: [string, string][] = [
  ['access-control-allow-methods', 'OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH'],
  ['access-control-allow-origin', '*'],
];

/**
 * Knative Functions for Node (faas-js-runtime): `handle(context, body)` returning a
 * string, an object, `{ statusCode, headers, body }`, or (for CloudEvent requests) a
 * CloudEvent, which goes back in binary mode.
 */
export function loadKnative(handle: KnativeHandler, _info: FunctionInfo): LoadedFunction {
  return {
    style: 'knative',
    async invoke(inv: Invocation): Promise<InvocationResult> {
      const raw = await inv.readBody();
      const pairs = headerPairs(inv.head.headers);
      const headers: Record<string, string> = {};
      for (const [k, v] of pairs) headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
      const q = inv.head.path.indexOf('?');
      const query = Object.fromEntries(new URLSearchParams(q === -1 ? '' : inv.head.path.slice(q + 1)));
      const contentType = (headers['content-type'] ?? '').split(';')[0].trim();
      let cloudevent: Record<string, unknown> | undefined;
      try {
        cloudevent = readCloudEvent(pairs, raw);
      } catch {
        cloudevent = undefined;
      }
      const body = raw.length === 0 ? undefined : parse(contentType, raw);
      const log = { info: console.log, warn: console.warn, error: console.error, debug: console.log };
      const context = { query, headers, method: inv.head.method, httpVersion: inv.head.protocol.replace('HTTP/', ''), body, contentType, cloudevent, log };
      let result: unknown;
      try {
        result = await handle(context, cloudevent ?? body);
      } catch (err) {
        console.error('Error processing user function', err);
        const e = err as { code?: unknown; message?: string };
        const status = typeof e.code === 'number' && e.code >= 400 && e.code <= 599 ? e.code : 500;
        return text(status, [], String(e.message ?? err));
      }
      return toResult(result);
    },
  };
}

function parse(contentType: string, raw: Buffer): unknown {
  if (contentType === 'application/json' || contentType.endsWith('+json')) {
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch {
      return raw.toString('utf8');
    }
  }
  if (contentType === 'application/x-www-form-urlencoded') return Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  if (contentType.startsWith('text/') || contentType === '') return raw.toString('utf8');
  return raw;
}

function text(status: number, headers: [string, string][], body: string): InvocationResult {
  return { head: { status, headers: [...BASE_HEADERS, ['content-type', 'text/plain; charset=utf8'], ...headers] }, body: Buffer.from(body) };
}

function isCloudEvent(v: Record<string, unknown>): boolean {
  return typeof v.specversion === 'string' && typeof v.id === 'string' && typeof v.source === 'string' && typeof v.type === 'string';
}

function toResult(result: unknown): InvocationResult {
  if (!result) return { head: { status: 204, headers: [...BASE_HEADERS, ['content-type', 'text/plain']] }, body: null };
  if (typeof result === 'string') return text(200, [], result);
  const r = result as Record<string, unknown>;
  if (isCloudEvent(r)) {
    const headers: [string, string][] = [...BASE_HEADERS];
    for (const [k, v] of Object.entries(r)) if (k !== 'data' && k !== 'datacontenttype' && v !== undefined) headers.push([`ce-${k}`, String(v)]);
    const data = r.data;
    const isBytes = Buffer.isBuffer(data) || data instanceof Uint8Array;
    headers.push([
      'content-type',
      String(r.datacontenttype ?? (typeof data === 'string' ? 'text/plain' : isBytes ? 'application/octet-stream' : 'application/json')),
    ]);
    const body = data === undefined ? null : isBytes ? Buffer.from(data as Uint8Array) : Buffer.from(typeof data === 'string' ? data : JSON.stringify(data));
    return { head: { status: 200, headers }, body };
  }
  const user: [string, string][] = [];
  if (r.headers && typeof r.headers === 'object') for (const [k, v] of Object.entries(r.headers)) user.push([k.toLowerCase(), String(v)]);
  const status = typeof r.statusCode === 'number' ? r.statusCode : 200;
  let type = 'application/json; charset=utf8';
  let payload: unknown = r;
  if (r.body !== undefined) {
    payload = r.body;
    if (typeof r.body === 'string') type = 'text/plain; charset=utf8';
  }
  const headers: [string, string][] = [...BASE_HEADERS, ['content-type', type]];
  for (const [k, v] of user) {
    const i = headers.findIndex(([name]) => name === k);
    if (i === -1) headers.push([k, v]);
    else headers[i] = [k, v];
  }
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  return { head: { status, headers }, body };
}
