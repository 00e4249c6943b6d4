import type { FunctionInfo, Invocation, InvocationResult, LoadedFunction } from '../invocation.js';
import { ShimError } from '../invocation.js';
import { bufferedBody, installResponseSource, NativeResponse } from './response-source.js';

interface WorkersModule {
  fetch(request: Request, env: Record<string, unknown>, ctx: ExecutionContext): Response | Promise<Response>;
}

const SIGNAL = Symbol('nimbus.request.signal');

/**
 * A Request whose `signal` aborts when the client goes away. Handing the signal to
 * the Request constructor makes every Request five times as expensive to build, so
 * the getter returns the invocation's signal instead.
 */
class InvocationRequest extends Request {
  [SIGNAL]!: AbortSignal;
}
Object.defineProperty(InvocationRequest.prototype, 'signal', {
  get(this: InvocationRequest) {
    return this[SIGNAL];
  },
});

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
}

/**
 * The native Web-standard style (as in Cloudflare Workers):
 * `export default { fetch(request, env, ctx) }`.
 */
export function loadWorkers(mod: WorkersModule, info: FunctionInfo): LoadedFunction {
  const env = Object.freeze({ ...info.env });
  installResponseSource();
  return {
    style: 'workers',
    async invoke(inv: Invocation): Promise<InvocationResult> {
      const host = findHeader(inv.head.headers, 'host') ?? 'localhost';
      const url = `http://${host}${inv.head.path}`;
      const method = inv.head.method;
      const init: RequestInit & { duplex?: 'half' } = { method, headers: toHeaders(inv.head.headers) };
      if (inv.hasBody && method !== 'GET' && method !== 'HEAD') {
        init.body = ReadableStream.from(inv.body);
        init.duplex = 'half';
      }
      const request = new InvocationRequest(url, init);
      request[SIGNAL] = inv.signal;
      const ctx: ExecutionContext = { waitUntil: (p) => inv.waitUntil(p), passThroughOnException() {} };
      const response = await mod.fetch(request, env, ctx);
      if (!(response instanceof NativeResponse)) {
        throw new ShimError('NIMBUS_INVALID_RESPONSE', `fetch() returned ${describe(response)} instead of a Response`);
      }
      const headers: [string, string][] = [];
      response.headers.forEach((value, name) => {
        if (name !== 'set-cookie') headers.push([name, value]);
      });
      for (const cookie of response.headers.getSetCookie()) headers.push(['set-cookie', cookie]);
      const buffered = bufferedBody(response);
      const body = buffered !== undefined ? buffered : response.body ? (response.body as unknown as AsyncIterable<Uint8Array>) : null;
      return { head: { status: response.status, headers }, body };
    },
  };
}

function toHeaders(raw: string[]): Headers {
  const headers = new Headers();
  for (let i = 0; i < raw.length; i += 2) {
    try {
      headers.append(raw[i], raw[i + 1]);
    } catch {
      // A header the Fetch standard forbids is dropped rather than failing the request.
    }
  }
  return headers;
}

function findHeader(raw: string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) return raw[i + 1];
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'Object'})`;
  return typeof value;
}
