import type { FunctionInfo, Invocation, InvocationResult, LoadedFunction } from '../invocation.js';
import { headerPairs, isTextContentType } from '../invocation.js';
import { eventResult, parseEvent } from './lambda.js';

type OpenWhiskMain = (params: Record<string, unknown>) => unknown;

/**
 * OpenWhisk web actions: `main(params)` gets the query and a JSON (or form) body merged
 * into params plus `__ow_method`, `__ow_headers`, `__ow_path`, `__ow_query` and
 * `__ow_body`, and returns `{ statusCode, headers, body }` or a plain object (JSON).
 */
export function loadOpenWhisk(main: OpenWhiskMain, _info: FunctionInfo): LoadedFunction {
  return {
    style: 'openwhisk',
    async invoke(inv: Invocation): Promise<InvocationResult> {
      const raw = await inv.readBody();
      // A direct (non-web) invocation: the params are the event, the result goes back as JSON.
      if (inv.head.event) return eventResult(await main(parseEvent(raw) as Record<string, unknown>));
      const headers: Record<string, string> = {};
      for (const [k, v] of headerPairs(inv.head.headers)) headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
      const q = inv.head.path.indexOf('?');
      const queryString = q === -1 ? '' : inv.head.path.slice(q + 1);
      const params: Record<string, unknown> = Object.fromEntries(new URLSearchParams(queryString));
      const type = (headers['content-type'] ?? '').split(';')[0].trim();
      if (raw.length > 0 && type === 'application/json') {
        try {
          const parsed = JSON.parse(raw.toString('utf8'));
          if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) Object.assign(params, parsed);
        } catch {
          return json(400, { error: 'The request content was malformed: the body is not valid JSON.' });
        }
      } else if (raw.length > 0 && type === 'application/x-www-form-urlencoded') {
        Object.assign(params, Object.fromEntries(new URLSearchParams(raw.toString('utf8'))));
      }
      Object.assign(params, {
        __ow_method: inv.head.method.toLowerCase(),
        __ow_headers: headers,
        __ow_path: q === -1 ? inv.head.path : inv.head.path.slice(0, q),
        __ow_query: queryString,
        __ow_body: raw.length === 0 ? '' : isTextContentType(headers['content-type']) ? raw.toString('utf8') : raw.toString('base64'),
      });
      const result = await main(params);
      return toResult(result);
    },
  };
}

function json(status: number, value: unknown): InvocationResult {
  return { head: { status, headers: [['content-type', 'application/json']] }, body: Buffer.from(JSON.stringify(value)) };
}

function toResult(result: unknown): InvocationResult {
  if (result === undefined || result === null) return { head: { status: 204, headers: [] }, body: null };
  if (typeof result !== 'object' || Array.isArray(result)) return json(200, result);
  const r = result as { statusCode?: number; headers?: Record<string, unknown>; body?: unknown };
  if (r.statusCode === undefined && r.headers === undefined && r.body === undefined) return json(200, r);
  const headers: [string, string][] = Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]);
  const type = headers.find(([k]) => k === 'content-type')?.[1];
  let body: Buffer | null = null;
  if (r.body !== undefined && r.body !== null) {
    if (typeof r.body === 'object') {
      body = Buffer.from(JSON.stringify(r.body));
      if (!type) headers.push(['content-type', 'application/json']);
    } else if (typeof r.body === 'string' && type && !isTextContentType(type) && /^[A-Za-z0-9+/=\s]*$/.test(r.body)) {
      // A binary content type with a string body: OpenWhisk decodes it from base64.
      body = Buffer.from(r.body, 'base64');
    } else {
      body = Buffer.from(String(r.body));
      if (!type) headers.push(['content-type', 'text/html; charset=utf-8']);
    }
  }
  return { head: { status: r.statusCode ?? 200, headers }, body };
}
