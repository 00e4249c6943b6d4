import type { FunctionInfo, Invocation, InvocationResult, LoadedFunction } from '../invocation.js';
import { headerPairs } from '../invocation.js';

type Callback = (err: unknown, result?: unknown) => void;
type OpenFaasHandler = (event: OpenFaasEvent, context: OpenFaasContext, callback: Callback) => unknown;

export interface OpenFaasEvent {
  body: unknown;
  headers: Record<string, string>;
  method: string;
  query: Record<string, string | string[]>;
  path: string;
}

/** The `context` of the of-watchdog Node templates: a chainable response builder. */
export class OpenFaasContext {
  statusCode = 200;
  headerValues: Record<string, string> = {};
  cbCalled = 0;
  readonly #cb: Callback;

  constructor(cb: Callback) {
    this.#cb = cb;
  }

  status(code?: number): this | number {
    if (!code) return this.statusCode;
    this.statusCode = code;
    return this;
  }

  headers(value?: Record<string, string>): this | Record<string, string> {
    if (!value) return this.headerValues;
    this.headerValues = value;
    return this;
  }

  succeed(value?: unknown): void {
    this.cbCalled++;
    this.#cb(undefined, value);
  }

  fail(value?: unknown): void {
    if (this.statusCode === 200) this.statusCode = 500;
    this.cbCalled++;
    this.#cb(value ?? 'error');
  }
}

/**
 * OpenFaaS Node templates (node18/node20, of-watchdog http mode):
 * `module.exports = async (event, context) => context.status(200).headers({...}).succeed(body)`.
 * The body is parsed as the template's body-parser setup does: JSON, text (also when
 * no Content-Type is sent) and URL-encoded forms; anything else arrives as {}.
 */
export function loadOpenFaas(handler: OpenFaasHandler, _info: FunctionInfo): LoadedFunction {
  return {
    style: 'openfaas',
    async invoke(inv: Invocation): Promise<InvocationResult> {
      const raw = await inv.readBody();
      let event: OpenFaasEvent;
      try {
        event = toEvent(inv, raw);
      } catch {
        // body-parser's answer to a JSON body that does not parse.
        return send(400, {}, 'Bad Request: the body is not valid JSON');
      }
      return new Promise<InvocationResult>((resolve) => {
        let settled = false;
        const cb: Callback = (err, result) => {
          if (settled) return;
          settled = true;
          if (err !== undefined && err !== null) {
            console.error(err);
            // A thrown error keeps the status the function set; the template would
            // answer 200 with the error text, which we treat as a bug: 500 instead.
            const status = context.statusCode === 200 ? 500 : context.statusCode;
            resolve(send(status, {}, typeof (err as Error).toString === 'function' ? String(err) : err));
            return;
          }
          const isPlain = Array.isArray(result) || (result !== null && typeof result === 'object' && result.constructor === Object);
          resolve(send(context.statusCode, context.headerValues, isPlain ? JSON.stringify(result) : result));
        };
        const context = new OpenFaasContext(cb);
        Promise.resolve()
          .then(() => handler(event, context, cb))
          .then((value) => {
            if (!context.cbCalled) context.succeed(value);
          })
          .catch((err: unknown) => cb(err ?? 'error'));
      });
    },
  };
}

function toEvent(inv: Invocation, raw: Buffer): OpenFaasEvent {
  const headers: Record<string, string> = {};
  for (const [name, value] of headerPairs(inv.head.headers)) headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  const q = inv.head.path.indexOf('?');
  const query: Record<string, string | string[]> = {};
  if (q !== -1) {
    for (const [k, v] of new URLSearchParams(inv.head.path.slice(q + 1))) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
  }
  const type = (headers['content-type'] ?? 'text/plain').split(';')[0].trim().toLowerCase();
  let body: unknown = {};
  if (raw.length > 0) {
    if (type.startsWith('text/')) body = raw.toString('utf8');
    else if (type === 'application/json' || type.endsWith('+json')) body = JSON.parse(raw.toString('utf8'));
    else if (type === 'application/x-www-form-urlencoded') body = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  }
  return { body, headers, method: inv.head.method, query, path: q === -1 ? inv.head.path : inv.head.path.slice(0, q) };
}

/** Express's res.send(): strings go out as text/html, buffers as octet-stream, unless the function set a type. */
function send(status: number, headers: Record<string, string>, value: unknown): InvocationResult {
  const out: [string, string][] = Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)]);
  const hasType = out.some(([k]) => k === 'content-type');
  let body: Buffer | null = null;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    body = Buffer.from(value);
    if (!hasType) out.push(['content-type', 'application/octet-stream']);
  } else if (value !== undefined && value !== null) {
    body = Buffer.from(typeof value === 'string' ? value : String(value));
    if (!hasType) out.push(['content-type', 'text/html; charset=utf-8']);
  }
  return { head: { status, headers: out }, body };
}
