/**
 * A Response that keeps a string or byte body as it was given. Node builds a
 * ReadableStream for every Response body at construction, which costs more than the
 * rest of a hello-world request; a handler that answers `new Response('text')` or
 * `Response.json(value)` and never reads its own body needs none. Such a Response is
 * made with no body, and keeps the source aside: the shim sends the source as one
 * buffer, and anything that touches the body (body, text(), clone(), ...) gets it from
 * a native Response built from the source then, so it behaves as the standard says.
 * Streams, forms, blobs, and Responses made elsewhere (fetch, Response.error) are
 * native through and through.
 */
export const NativeResponse: typeof Response = globalThis.Response;

type Source = string | Uint8Array;

/** Statuses whose responses have no body (Fetch standard, "null body status"). */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/** What touches the body: each goes to the native Response behind a source. */
const BODY_METHODS = ['arrayBuffer', 'blob', 'bytes', 'formData', 'json', 'text'] as const;

class SourceResponse extends NativeResponse {
  #source: Source | undefined;
  /** The native Response carrying the body, built the first time the body is touched. */
  #native: Response | undefined;

  constructor(body?: ConstructorParameters<typeof Response>[0], init?: ResponseInit) {
    const source = typeof body === 'string' ? body : body instanceof ArrayBuffer || ArrayBuffer.isView(body) ? copyBytes(body) : undefined;
    super(source === undefined ? body : null, init);
    if (source === undefined) return;
    if (NULL_BODY_STATUS.has(this.status)) throw new TypeError(`Response constructor: Invalid response status code ${this.status}`);
    this.#source = source;
    if (typeof source === 'string' && !this.headers.has('content-type')) this.headers.set('content-type', 'text/plain;charset=UTF-8');
  }

  /** The body as one buffer, while it is a source nobody has touched; undefined otherwise. */
  static untouchedSource(response: Response): Buffer | undefined {
    if (!(#source in response) || response.#source === undefined || response.#native) return undefined;
    const source = response.#source;
    return typeof source === 'string' ? Buffer.from(source) : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  }

  #body(): Response {
    this.#native ??= new NativeResponse(this.#source as Source, { status: this.status, statusText: this.statusText, headers: this.headers });
    return this.#native;
  }

  static sourced(response: Response): response is SourceResponse {
    return #source in response && response.#source !== undefined;
  }

  /** Where a body method should go: the native Response behind a source, or the Response itself. */
  static bodyOf(response: Response): Response {
    return SourceResponse.sourced(response) ? response.#body() : response;
  }

  static sourcedBodyUsed(response: SourceResponse): boolean {
    return response.#native?.bodyUsed ?? false;
  }

  /** A copy with the headers as they are now; the body is the source again, or the native body teed. */
  static cloneSourced(response: SourceResponse): Response {
    const init = { status: response.status, statusText: response.statusText, headers: response.headers };
    if (!response.#native) return new SourceResponse(response.#source, init);
    return new NativeResponse(response.#native.clone().body, init);
  }

  // Responses from fetch(), clone() or Response.error() are Responses too.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof NativeResponse;
  }

  static override json(data: unknown, init: ResponseInit = {}): Response {
    const headers = new Headers(init.headers);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    return new SourceResponse(JSON.stringify(data), { ...init, headers });
  }
}

const proto = NativeResponse.prototype as unknown as Record<string, unknown>;
for (const name of BODY_METHODS) {
  const native = proto[name];
  if (typeof native !== 'function') continue; // bytes() is newer than some Node releases
  Object.defineProperty(SourceResponse.prototype, name, {
    configurable: true,
    writable: true,
    value: function bodyMethod(this: Response): unknown {
      return (native as (this: Response) => unknown).call(SourceResponse.bodyOf(this));
    },
  });
}
const nativeBody = Object.getOwnPropertyDescriptor(NativeResponse.prototype, 'body')?.get as (this: Response) => ReadableStream | null;
const nativeClone = NativeResponse.prototype.clone;
const nativeBodyUsed = Object.getOwnPropertyDescriptor(NativeResponse.prototype, 'bodyUsed')?.get as (this: Response) => boolean;
Object.defineProperties(SourceResponse.prototype, {
  body: {
    configurable: true,
    get(this: Response) {
      return nativeBody.call(SourceResponse.bodyOf(this));
    },
  },
  bodyUsed: {
    configurable: true,
    get(this: Response) {
      return SourceResponse.sourced(this) ? SourceResponse.sourcedBodyUsed(this) : nativeBodyUsed.call(this);
    },
  },
  clone: {
    configurable: true,
    writable: true,
    value: function clone(this: Response): Response {
      return SourceResponse.sourced(this) ? SourceResponse.cloneSourced(this) : nativeClone.call(this);
    },
  },
});

/** A copy, as the standard takes one: later writes to the caller's buffer do not change the body. */
function copyBytes(view: ArrayBuffer | ArrayBufferView): Uint8Array {
  return view instanceof ArrayBuffer ? new Uint8Array(view.slice(0)) : new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
}

export function installResponseSource(): void {
  globalThis.Response = SourceResponse;
}

/** The body as one buffer when it is known without reading a stream; undefined otherwise. */
export function bufferedBody(response: Response): Buffer | null | undefined {
  const source = SourceResponse.untouchedSource(response);
  if (source !== undefined) return source;
  if (response.body === null && !response.bodyUsed) return null;
  return undefined;
}
