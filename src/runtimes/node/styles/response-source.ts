/**
 * Remembers what each Response was built from. A handler that answers
 * `new Response('text')` or `Response.json(value)` then goes out as one buffer instead
 * of through a ReadableStream, which costs more than the rest of the request.
 * Streams, and Responses made elsewhere (fetch, clone, redirect), still stream.
 */
const SOURCE = Symbol('nimbus.response.source');
export const NativeResponse: typeof Response = globalThis.Response;

type Source = string | Uint8Array | ArrayBuffer | null | undefined;

class SourceResponse extends NativeResponse {
  [SOURCE]: unknown;

  constructor(body?: ConstructorParameters<typeof Response>[0], init?: ResponseInit) {
    super(body, init);
    this[SOURCE] = body;
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

export function installResponseSource(): void {
  globalThis.Response = SourceResponse;
}

/** The body as one buffer when it is known without reading a stream; undefined otherwise. */
export function bufferedBody(response: Response): Buffer | null | undefined {
  if (!(SOURCE in response) || response.bodyUsed) return undefined;
  const source = (response as SourceResponse)[SOURCE] as Source | object;
  if (source === null || source === undefined) return null;
  if (typeof source === 'string') return Buffer.from(source);
  if (source instanceof Uint8Array) return Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  if (source instanceof ArrayBuffer) return Buffer.from(source);
  return undefined;
}
