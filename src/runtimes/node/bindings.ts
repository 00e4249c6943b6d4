/**
 * env.<NAME> objects for a function's bindings, with the Workers APIs (KV namespaces,
 * R2 buckets, Queue producers). Each call is a request to the platform's local state
 * endpoint (docs/state.md), authorised by this instance's own token.
 */
export type BindingSpec = { kv: string } | { bucket: string } | { topic: string };

interface Endpoint {
  url: string;
  token: string;
}

type BodyInit = string | ArrayBuffer | ArrayBufferView | ReadableStream | Blob | null;

export function makeBindings(specs: Record<string, BindingSpec>, url: string | undefined, token: string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!url || !token) return out;
  const ep = { url, token };
  for (const [name, spec] of Object.entries(specs)) {
    if ('kv' in spec) out[name] = new KvNamespace(ep, name);
    else if ('bucket' in spec) out[name] = new Bucket(ep, name);
    else out[name] = new Producer(ep, name);
  }
  return out;
}

async function call(ep: Endpoint, method: string, path: string, init: { body?: BodyInit; headers?: Record<string, string> } = {}): Promise<Response> {
  const req: RequestInit & { duplex?: 'half' } = { method, headers: { authorization: `Bearer ${ep.token}`, ...init.headers } };
  if (init.body !== undefined && init.body !== null) {
    req.body = init.body as RequestInit['body'];
    if (init.body instanceof ReadableStream) req.duplex = 'half';
  }
  const res = await fetch(`${ep.url}${path}`, req);
  if (res.status === 404 && (method === 'GET' || method === 'HEAD')) {
    // The code is in a header as well, since a HEAD answer has no body.
    const code = res.headers.get('x-nimbus-error-code');
    if (code === 'NIMBUS_KEY_NOT_FOUND' || code === 'NIMBUS_OBJECT_NOT_FOUND') return res;
  }
  if (res.status >= 400) {
    let message = `${res.status} ${res.headers.get('x-nimbus-error-code') ?? ''}`.trim();
    try {
      const e = ((await res.json()) as { error?: { code: string; message: string } }).error;
      if (e) message = `${e.code}: ${e.message}`;
    } catch {
      // not JSON
    }
    throw new Error(`${method} ${path.split('?')[0]} failed: ${message}`);
  }
  return res;
}

/** A key as one path segment. "", "." and ".." cannot be one (URLs read them as the folder, or its parent). */
function keyPath(key: string): string {
  const k = String(key);
  if (k === '' || k === '.' || k === '..') throw new TypeError(`NIMBUS_INVALID_KEY: a key cannot be ${JSON.stringify(k)}`);
  return encodeURIComponent(k);
}

/** Workers KV: get (text, json, arrayBuffer, stream), put with expirationTtl/expiration, delete, list. */
class KvNamespace {
  readonly #ep: Endpoint;
  readonly #base: string;

  constructor(ep: Endpoint, binding: string) {
    this.#ep = ep;
    this.#base = `/v1/kv/${binding}/keys`;
  }

  async get(key: string, options?: 'text' | 'json' | 'arrayBuffer' | 'stream' | { type?: string }): Promise<unknown> {
    const type = typeof options === 'string' ? options : (options?.type ?? 'text');
    const res = await call(this.#ep, 'GET', `${this.#base}/${keyPath(key)}`);
    if (res.status === 404) {
      await res.arrayBuffer();
      return null;
    }
    if (type === 'json') return res.json();
    if (type === 'arrayBuffer') return res.arrayBuffer();
    if (type === 'stream') return res.body;
    return res.text();
  }

  async put(key: string, value: BodyInit, options: { expirationTtl?: number; expiration?: number } = {}): Promise<void> {
    const q =
      options.expirationTtl !== undefined ? `?ttl=${options.expirationTtl}` : options.expiration !== undefined ? `?expiration=${options.expiration}` : '';
    const res = await call(this.#ep, 'PUT', `${this.#base}/${keyPath(key)}${q}`, { body: value });
    await res.arrayBuffer();
  }

  async delete(key: string): Promise<void> {
    await (await call(this.#ep, 'DELETE', `${this.#base}/${keyPath(key)}`)).arrayBuffer();
  }

  async list(
    options: { prefix?: string; cursor?: string; limit?: number } = {},
  ): Promise<{ keys: { name: string; expiration?: number }[]; list_complete: boolean; cursor?: string }> {
    const q = new URLSearchParams();
    if (options.prefix) q.set('prefix', options.prefix);
    if (options.cursor) q.set('cursor', options.cursor);
    if (options.limit) q.set('limit', String(options.limit));
    const page = (await (await call(this.#ep, 'GET', `${this.#base}?${q}`)).json()) as {
      keys: { name: string; expiration: number | null }[];
      cursor: string | null;
      complete: boolean;
    };
    return {
      keys: page.keys.map((k) => (k.expiration === null ? { name: k.name } : { name: k.name, expiration: k.expiration })),
      list_complete: page.complete,
      ...(page.cursor ? { cursor: page.cursor } : {}),
    };
  }
}

interface ObjectJson {
  key: string;
  size: number;
  etag: string;
  contentType: string | null;
  customMetadata: Record<string, string>;
  uploaded: string;
}

/** R2Object: what put(), head() and list() return. */
class R2Object {
  readonly key: string;
  readonly size: number;
  readonly etag: string;
  readonly httpEtag: string;
  readonly uploaded: Date;
  readonly httpMetadata: { contentType?: string };
  readonly customMetadata: Record<string, string>;

  constructor(o: ObjectJson) {
    this.key = o.key;
    this.size = o.size;
    this.etag = o.etag;
    this.httpEtag = `"${o.etag}"`;
    this.uploaded = new Date(o.uploaded);
    this.httpMetadata = o.contentType ? { contentType: o.contentType } : {};
    this.customMetadata = o.customMetadata;
  }
}

/** R2ObjectBody: get()'s result, with the body as a stream and the usual readers. */
class R2ObjectBody extends R2Object {
  readonly #res: Response;

  constructor(o: ObjectJson, res: Response) {
    super(o);
    this.#res = res;
  }

  get body(): ReadableStream | null {
    return this.#res.body;
  }
  get bodyUsed(): boolean {
    return this.#res.bodyUsed;
  }
  text(): Promise<string> {
    return this.#res.text();
  }
  json(): Promise<unknown> {
    return this.#res.json();
  }
  arrayBuffer(): Promise<ArrayBuffer> {
    return this.#res.arrayBuffer();
  }
  blob(): Promise<Blob> {
    return this.#res.blob();
  }
}

function fromHeaders(key: string, res: Response, size: number): ObjectJson {
  const customMetadata: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    if (k.startsWith('x-nimbus-meta-')) customMetadata[k.slice('x-nimbus-meta-'.length)] = decodeURIComponent(v);
  });
  return {
    key,
    size,
    etag: (res.headers.get('etag') ?? '').replace(/"/g, ''),
    contentType: res.headers.get('content-type'),
    customMetadata,
    uploaded: new Date(res.headers.get('last-modified') ?? 0).toISOString(),
  };
}

/** R2 buckets: put, get (with range), head, list, delete; bodies stream both ways. */
class Bucket {
  readonly #ep: Endpoint;
  readonly #base: string;

  constructor(ep: Endpoint, binding: string) {
    this.#ep = ep;
    this.#base = `/v1/buckets/${binding}/objects`;
  }

  async put(
    key: string,
    value: BodyInit,
    options: { httpMetadata?: { contentType?: string } | Headers; customMetadata?: Record<string, string> } = {},
  ): Promise<R2Object> {
    const headers: Record<string, string> = {};
    const meta = options.httpMetadata;
    const contentType = meta instanceof Headers ? meta.get('content-type') : meta?.contentType;
    if (contentType) headers['content-type'] = contentType;
    for (const [k, v] of Object.entries(options.customMetadata ?? {})) headers[`x-nimbus-meta-${k.toLowerCase()}`] = encodeURIComponent(v);
    const res = await call(this.#ep, 'PUT', `${this.#base}/${keyPath(key)}`, { body: value ?? '', headers });
    return new R2Object(((await res.json()) as { object: ObjectJson }).object);
  }

  async get(key: string, options: { range?: { offset?: number; length?: number; suffix?: number } } = {}): Promise<R2ObjectBody | null> {
    const headers: Record<string, string> = {};
    const r = options.range;
    if (r?.suffix !== undefined) headers.range = `bytes=-${r.suffix}`;
    else if (r) headers.range = `bytes=${r.offset ?? 0}-${r.length !== undefined ? (r.offset ?? 0) + r.length - 1 : ''}`;
    const res = await call(this.#ep, 'GET', `${this.#base}/${keyPath(key)}`, { headers });
    if (res.status === 404) {
      await res.arrayBuffer();
      return null;
    }
    const total = res.headers.get('content-range')?.split('/')[1] ?? res.headers.get('content-length') ?? '0';
    return new R2ObjectBody(fromHeaders(key, res, Number(total)), res);
  }

  async head(key: string): Promise<R2Object | null> {
    const res = await call(this.#ep, 'HEAD', `${this.#base}/${keyPath(key)}`);
    if (res.status === 404) return null;
    return new R2Object(fromHeaders(key, res, Number(res.headers.get('content-length') ?? 0)));
  }

  async list(
    options: { prefix?: string; cursor?: string; limit?: number; delimiter?: string } = {},
  ): Promise<{ objects: R2Object[]; truncated: boolean; cursor?: string; delimitedPrefixes: string[] }> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(options)) if (v !== undefined) q.set(k, String(v));
    const page = (await (await call(this.#ep, 'GET', `${this.#base}?${q}`)).json()) as {
      objects: ObjectJson[];
      truncated: boolean;
      cursor: string | null;
      delimitedPrefixes: string[];
    };
    return {
      objects: page.objects.map((o) => new R2Object(o)),
      truncated: page.truncated,
      ...(page.cursor ? { cursor: page.cursor } : {}),
      delimitedPrefixes: page.delimitedPrefixes,
    };
  }

  async delete(keys: string | string[]): Promise<void> {
    for (const key of Array.isArray(keys) ? keys : [keys]) await (await call(this.#ep, 'DELETE', `${this.#base}/${keyPath(key)}`)).arrayBuffer();
  }
}

type ContentType = 'json' | 'text' | 'bytes';

/** A message body and its content type, as Workers Queues encode them (json by default). */
function encode(body: unknown, contentType?: ContentType): { body: string; contentType: string; encoding?: 'base64' } {
  const type = contentType ?? (typeof body === 'string' ? 'text' : body instanceof ArrayBuffer || ArrayBuffer.isView(body) ? 'bytes' : 'json');
  if (type === 'text') return { body: String(body), contentType: 'text/plain' };
  if (type === 'bytes') {
    const bytes =
      body instanceof ArrayBuffer
        ? Buffer.from(body)
        : Buffer.from((body as ArrayBufferView).buffer, (body as ArrayBufferView).byteOffset, (body as ArrayBufferView).byteLength);
    return { body: bytes.toString('base64'), contentType: 'application/octet-stream', encoding: 'base64' };
  }
  return { body: JSON.stringify(body), contentType: 'application/json' };
}

/** A Queue producer: send() and sendBatch() publish to the bound topic. */
class Producer {
  readonly #ep: Endpoint;
  readonly #path: string;

  constructor(ep: Endpoint, binding: string) {
    this.#ep = ep;
    this.#path = `/v1/topics/${binding}/batch`;
  }

  send(body: unknown, options: { contentType?: ContentType } = {}): Promise<void> {
    return this.sendBatch([{ body, contentType: options.contentType }]);
  }

  async sendBatch(messages: Iterable<{ body: unknown; contentType?: ContentType }>): Promise<void> {
    const list = [...messages].map((m) => encode(m.body, m.contentType));
    const res = await call(this.#ep, 'POST', this.#path, { body: JSON.stringify({ messages: list }), headers: { 'content-type': 'application/json' } });
    await res.arrayBuffer();
  }
}
