import { Readable } from 'node:stream';
import type { FunctionInfo, Invocation, InvocationResult, LoadedFunction } from '../invocation.js';
import { BodyQueue, headerPairs } from '../invocation.js';

type ExpressHandler = (req: ExpressRequest, res: ExpressResponse) => unknown;

/**
 * The request an Express-style handler gets: a readable stream of the raw body, with
 * the fields Express, Google Cloud Functions and Vercel add (body parsed by type,
 * rawBody, query, cookies, path, get()).
 */
export class ExpressRequest extends Readable {
  method: string;
  url: string;
  originalUrl: string;
  path: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  query: Record<string, string | string[]>;
  body: unknown;
  rawBody: Buffer;
  cookies: Record<string, string>;
  ip: string;
  protocol = 'http';
  hostname: string;
  httpVersion: string;

  constructor(inv: Invocation, raw: Buffer) {
    super();
    const { head } = inv;
    this.method = head.method;
    this.url = head.path;
    this.originalUrl = head.path;
    const q = head.path.indexOf('?');
    this.path = q === -1 ? head.path : head.path.slice(0, q);
    this.rawHeaders = head.headers;
    this.headers = {};
    for (const [name, value] of headerPairs(head.headers)) this.headers[name] = name in this.headers ? `${this.headers[name]}, ${value}` : value;
    this.query = {};
    if (q !== -1) {
      for (const [k, v] of new URLSearchParams(head.path.slice(q + 1))) {
        const prev = this.query[k];
        this.query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
    }
    this.cookies = {};
    for (const part of (this.headers.cookie ?? '').split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0) this.cookies[part.slice(0, eq).trim()] = decodeURIComponent(part.slice(eq + 1).trim());
    }
    this.rawBody = raw;
    this.body = parseBody(this.headers['content-type'], raw);
    this.ip = head.sourceIp;
    this.hostname = (this.headers.host ?? 'localhost').replace(/:\d+$/, '');
    this.httpVersion = head.protocol.replace('HTTP/', '');
    this.push(raw.length > 0 ? raw : null);
    if (raw.length > 0) this.push(null);
  }

  override _read(): void {}

  get(name: string): string | undefined {
    return this.headers[name.toLowerCase()];
  }

  header(name: string): string | undefined {
    return this.get(name);
  }
}

/** How Express (body-parser), Cloud Functions and Vercel parse a body: by its type. */
function parseBody(contentType: string | undefined, raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch {
      return raw.toString('utf8');
    }
  }
  if (type.startsWith('text/')) return raw.toString('utf8');
  if (type === 'application/x-www-form-urlencoded') return Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  return raw;
}

/** The response side: Node's ServerResponse methods plus Express's status/set/send/json/redirect. */
export class ExpressResponse {
  statusCode = 200;
  statusMessage = '';
  headersSent = false;
  writableEnded = false;
  readonly #headers = new Map<string, string | string[]>();
  readonly #body = new BodyQueue();
  readonly #onHead: (result: InvocationResult) => void;
  readonly #finish: (() => void)[] = [];

  constructor(onHead: (result: InvocationResult) => void) {
    this.#onHead = onHead;
  }

  status(code: number): this {
    this.statusCode = code;
    return this;
  }

  setHeader(name: string, value: string | number | readonly string[]): this {
    this.#headers.set(name.toLowerCase(), Array.isArray(value) ? value.map(String) : String(value));
    return this;
  }

  getHeader(name: string): string | string[] | undefined {
    return this.#headers.get(name.toLowerCase());
  }

  getHeaders(): Record<string, string | string[]> {
    return Object.fromEntries(this.#headers);
  }

  hasHeader(name: string): boolean {
    return this.#headers.has(name.toLowerCase());
  }

  removeHeader(name: string): void {
    this.#headers.delete(name.toLowerCase());
  }

  set(field: string | Record<string, string>, value?: string): this {
    if (typeof field === 'string') this.setHeader(field, value ?? '');
    else for (const [k, v] of Object.entries(field)) this.setHeader(k, v);
    return this;
  }

  header(field: string | Record<string, string>, value?: string): this {
    return this.set(field, value);
  }

  get(name: string): string | string[] | undefined {
    return this.getHeader(name);
  }

  type(value: string): this {
    return this.setHeader('content-type', value.includes('/') ? value : value === 'json' ? 'application/json' : `text/${value}`);
  }

  writeHead(status: number, headers?: Record<string, string | number>): this {
    this.statusCode = status;
    for (const [k, v] of Object.entries(headers ?? {})) this.setHeader(k, v);
    this.#flushHead();
    return this;
  }

  write(chunk: string | Uint8Array, encoding?: BufferEncoding): boolean {
    this.#flushHead();
    this.#body.push(typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.from(chunk));
    return true;
  }

  end(chunk?: string | Uint8Array | (() => void), encoding?: BufferEncoding): this {
    if (this.writableEnded) return this;
    if (chunk !== undefined && typeof chunk !== 'function') this.write(chunk, encoding);
    this.#flushHead();
    this.writableEnded = true;
    this.#body.end();
    for (const listener of this.#finish.splice(0)) listener();
    return this;
  }

  send(body?: unknown): this {
    if (body === undefined || body === null) return this.end();
    if (Buffer.isBuffer(body) || body instanceof Uint8Array) {
      if (!this.hasHeader('content-type')) this.setHeader('content-type', 'application/octet-stream');
      return this.end(body);
    }
    if (typeof body === 'object' || typeof body === 'boolean' || typeof body === 'number') return this.json(body);
    if (!this.hasHeader('content-type')) this.setHeader('content-type', 'text/html; charset=utf-8');
    return this.end(String(body));
  }

  json(value: unknown): this {
    if (!this.hasHeader('content-type')) this.setHeader('content-type', 'application/json; charset=utf-8');
    return this.end(JSON.stringify(value));
  }

  sendStatus(code: number): this {
    this.statusCode = code;
    return this.type('text/plain; charset=utf-8').end(String(code));
  }

  redirect(statusOrUrl: number | string, url?: string): this {
    const [status, location] = typeof statusOrUrl === 'number' ? [statusOrUrl, url ?? '/'] : [302, statusOrUrl];
    this.statusCode = status;
    this.setHeader('location', location);
    return this.end();
  }

  on(event: string, listener: () => void): this {
    if (event === 'finish' || event === 'close') this.#finish.push(listener);
    return this;
  }

  once(event: string, listener: () => void): this {
    return this.on(event, listener);
  }

  #flushHead(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    const headers: [string, string][] = [];
    for (const [name, value] of this.#headers) for (const v of Array.isArray(value) ? value : [value]) headers.push([name, v]);
    this.#onHead({ head: { status: this.statusCode, headers }, body: this.#body });
  }
}

/**
 * Express-style `(req, res)` handlers: Google Cloud Functions (`exports.fn = (req, res)
 * => ...`) and Vercel Node functions (`export default function handler(req, res)`).
 * The response streams from the first write; the handler may finish it later.
 */
export function loadExpress(handler: ExpressHandler, style: string, _info: FunctionInfo): LoadedFunction {
  return {
    style,
    async invoke(inv: Invocation): Promise<InvocationResult> {
      const req = new ExpressRequest(inv, await inv.readBody());
      return new Promise<InvocationResult>((resolve, reject) => {
        const res = new ExpressResponse(resolve);
        Promise.resolve()
          .then(() => handler(req, res))
          .catch((err: unknown) => {
            if (!res.headersSent) reject(err);
            else {
              console.error(err);
              res.end();
            }
          });
      });
    },
  };
}
