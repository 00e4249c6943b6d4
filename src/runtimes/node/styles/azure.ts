import { randomUUID } from 'node:crypto';
import type { HttpOptions, TimerOptions } from '../../../sdk/azure-functions.js';
import type { FunctionInfo, LoadedFunction } from '../invocation.js';
import { loadWorkers, type TimerTick } from './workers.js';

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
export function loadAzureHttp(
  name: string | undefined,
  options: HttpOptions | undefined,
  info: FunctionInfo,
  timers = new Map<string, TimerOptions>(),
): LoadedFunction {
  const allowed = options?.methods?.map((m) => m.toUpperCase());
  const route = {
    async fetch(request: Request): Promise<Response> {
      if (!options || name === undefined) {
        return Response.json({ error: 'this Azure function registers only timer triggers (app.timer); it runs on its schedule' }, { status: 404 });
      }
      if (allowed && !allowed.includes(request.method)) return new Response(null, { status: 405, headers: { allow: allowed.join(', ') } });
      const url = new URL(request.url);
      const azureRequest = Object.assign(request, { query: url.searchParams, params: {} as Record<string, string>, user: null });
      const context = azureContext(name, 'httpTrigger');
      const result = (await options.handler(azureRequest, context)) as ResponseInit | Response | undefined;
      return toResponse(result);
    },
    /** A tick of a schedule: the timer it names (or, for older events, the one with that schedule, or the only one) gets Azure's Timer object. */
    async timer(tick: TimerTick): Promise<void> {
      const entries = [...timers];
      const [timerName, timer] =
        (tick.name !== undefined ? entries.find(([n]) => n === tick.name) : entries.find(([, t]) => t.schedule.trim() === tick.schedule)) ??
        (entries.length === 1 ? entries[0] : []);
      if (!timer || timerName === undefined)
        throw new Error(
          `no app.timer() is registered as "${tick.name ?? tick.schedule}" (registered: ${entries.map(([n, t]) => `${n}: ${t.schedule}`).join(', ') || 'none'})`,
        );
      const last = new Date(tick.scheduledTime).toISOString();
      const next = tick.nextTime === undefined ? last : new Date(tick.nextTime).toISOString();
      const myTimer = { isPastDue: tick.isPastDue, schedule: { adjustForDST: true }, scheduleStatus: { last, next, lastUpdated: last } };
      await timer.handler(myTimer, azureContext(timerName, 'timerTrigger'));
    },
  };
  return {
    ...loadWorkers(route as never, info),
    style: 'azure',
    handles: [...(options ? ['http'] : []), ...(timers.size > 0 ? ['timer'] : [])],
    timers: [...timers].map(([n, t]) => ({ name: n, schedule: t.schedule })),
  };
}

function azureContext(functionName: string, trigger: string) {
  const log = (...args: unknown[]) => console.log(...args);
  return {
    invocationId: randomUUID(),
    functionName,
    extraInputs: { get: () => undefined },
    extraOutputs: { set: () => {} },
    options: { trigger: { type: trigger }, extraInputs: [], extraOutputs: [] },
    log,
    trace: log,
    debug: log,
    info: log,
    warn: (...args: unknown[]) => console.warn(...args),
    error: (...args: unknown[]) => console.error(...args),
  };
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
