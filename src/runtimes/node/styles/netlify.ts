import type { FunctionInfo, Invocation, LoadedFunction } from '../invocation.js';
import { loadLambda } from './lambda.js';
import { loadWorkers } from './workers.js';

type NetlifyV2 = (request: Request, context: Record<string, unknown>) => Response | Promise<Response> | undefined;

/** Matches "/items/:id" against "/items/7" → { id: "7" }; undefined when it does not match. */
export function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/').filter(Boolean);
  const got = path.split('/').filter(Boolean);
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i] === '*') return params;
    if (i >= got.length) return undefined;
    if (want[i].startsWith(':')) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return undefined;
  }
  return want.length === got.length ? params : undefined;
}

/**
 * Netlify Functions. v2: `export default async (req, context) => new Response(...)` with
 * `export const config = { path }` (its `:params` fill context.params). v1:
 * `exports.handler = async (event, context) => ({ statusCode, body })`, Lambda-style
 * with REST-style events (payload format 1.0 plus rawUrl and rawQuery).
 */
export function loadNetlify(mod: Record<string, unknown>, info: FunctionInfo): LoadedFunction | undefined {
  const def = mod.default as unknown;
  if (typeof def === 'function') {
    const config = (mod.config ?? {}) as { path?: string | string[] };
    const patterns = config.path === undefined ? [] : Array.isArray(config.path) ? config.path : [config.path];
    const route = {
      fetch(request: Request) {
        const url = new URL(request.url);
        let params: Record<string, string> = {};
        for (const p of patterns) {
          const m = matchPath(p, url.pathname);
          if (m) {
            params = m;
            break;
          }
        }
        const cookies = parseCookies(request.headers.get('cookie') ?? '');
        const context = {
          params,
          requestId: request.headers.get('x-nimbus-request-id') ?? '',
          ip: request.headers.get('x-forwarded-for') ?? '',
          geo: {},
          site: { name: info.functionName },
          account: {},
          deploy: { id: String(info.version) },
          server: { region: 'local' },
          cookies: { get: (name: string) => cookies[name], set() {}, delete() {} },
          json: (value: unknown) => Response.json(value),
          next: () => new Response('Not Found', { status: 404 }),
        };
        return (def as NetlifyV2)(request, context) ?? new Response(null, { status: 204 });
      },
    };
    return { ...loadWorkers(route as never, info), style: 'netlify' };
  }
  const handler = mod.handler ?? (def && typeof def === 'object' ? (def as Record<string, unknown>).handler : undefined);
  if (typeof handler === 'function') {
    const lambda = loadLambda(handler as never, { ...info, payloadFormat: '1.0' }, withRawUrl);
    return { ...lambda, style: 'netlify' };
  }
  return undefined;
}

function withRawUrl(event: Record<string, unknown>, inv: Invocation): Record<string, unknown> {
  const host = (event.headers as Record<string, string> | null)?.host ?? 'localhost';
  const q = inv.head.path.indexOf('?');
  return { ...event, rawUrl: `http://${host}${inv.head.path}`, rawQuery: q === -1 ? '' : inv.head.path.slice(q + 1) };
}

function parseCookies(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq).trim()] = decodeURIComponent(part.slice(eq + 1).trim());
  }
  return out;
}
