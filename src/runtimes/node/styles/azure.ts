import { randomUUID } from 'node:crypto';
import type { HttpOptions } from '../../../sdk/azure-functions.js';
import type { FunctionInfo, LoadedFunction } from '../invocation.js';
import { loadWorkers } from './workers.js';

interface ResponseInit {
  status?: number;
  body?: unknown;
  jsonBody?: unknown;
  headers?: Record<string, string> | Headers;
  cookies?: { name: string; value: string; path?: string; maxAge?: number; httpOnly?: boolean; secure?: boolean; sameSite?: string }[];
}

/**
 * Azure Functions v4 HTTP triggers: `app.http('name', { methods, handler: async (request,
 * context) => ({ status, body, jsonBody, headers }) })`. `request` is fetch-like with
 * `query` (URLSearchParams) and `params`; `context` logs into the function's logs.
 */
export function loadAzureHttp(name: string, options: HttpOptions, info: FunctionInfo): LoadedFunction {
  const allowed = options.methods?.map((m) => m.toUpperCase());
  const route = {
    async fetch(request: Request): Promise<Response> {
      if (allowed && !allowed.includes(request.method)) return new Response(null, { status: 405, headers: { allow: allowed.join(', ') } });
      const url = new URL(request.url);
      const azureRequest = Object.assign(request, { query: url.searchParams, params: {} as Record<string, string>, user: null });
      const log = (...args: unknown[]) => console.log(...args);
      const context = {
        invocationId: randomUUID(),
        functionName: name,
        extraInputs: { get: () => undefined },
        extraOutputs: { set: () => {} },
        options: { trigger: { type: 'httpTrigger' }, extraInputs: [], extraOutputs: [] },
        log,
        trace: log,
        debug: log,
        info: log,
        warn: (...args: unknown[]) => console.warn(...args),
        error: (...args: unknown[]) => console.error(...args),
      };
      const result = (await options.handler(azureRequest, context)) as ResponseInit | Response | undefined;
      return toResponse(result);
    },
  };
  return { ...loadWorkers(route as never, info), style: 'azure' };
}

function toResponse(result: ResponseInit | Response | undefined): Response {
  if (result instanceof Response) return result;
  const init = result ?? {};
  const headers = new Headers(init.headers as ConstructorParameters<typeof Headers>[0]);
  for (const c of init.cookies ?? []) {
    let cookie = `${c.name}=${c.value}`;
    if (c.path) cookie += `; Path=${c.path}`;
    if (c.maxAge !== undefined) cookie += `; Max-Age=${c.maxAge}`;
    if (c.httpOnly) cookie += '; HttpOnly';
    if (c.secure) cookie += '; Secure';
    if (c.sameSite) cookie += `; SameSite=${c.sameSite}`;
    headers.append('set-cookie', cookie);
  }
  type Body = ConstructorParameters<typeof Response>[0];
  let body: Body = null;
  if (init.jsonBody !== undefined) {
    body = JSON.stringify(init.jsonBody);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  } else if (init.body !== undefined && init.body !== null) {
    body = typeof init.body === 'string' || init.body instanceof Uint8Array || init.body instanceof ReadableStream ? (init.body as Body) : String(init.body);
    if (typeof init.body === 'string' && !headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
  }
  return new Response(body, { status: init.status ?? 200, headers });
}
