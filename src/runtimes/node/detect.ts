import { REGISTRY as AZURE_REGISTRY, type AzureRegistry } from '../../sdk/azure-functions.js';
import { REGISTRY as FDK_REGISTRY, type FdkFunction } from '../../sdk/fnproject-fdk.js';
import { type FunctionsFrameworkRegistry, REGISTRY } from '../../sdk/functions-framework.js';
import type { FunctionInfo, LoadedFunction } from './invocation.js';
import { ShimError } from './invocation.js';
import { loadAzureHttp } from './styles/azure.js';
import { loadCloudEvent } from './styles/cloudevent.js';
import { loadExpress } from './styles/express.js';
import { loadFission } from './styles/fission.js';
import { loadFn } from './styles/fn.js';
import { loadKnative } from './styles/knative.js';
import { loadLambda } from './styles/lambda.js';
import { loadNetlify } from './styles/netlify.js';
import { loadOpenFaas } from './styles/openfaas.js';
import { loadOpenWhisk } from './styles/openwhisk.js';
import { loadWorkers } from './styles/workers.js';

type Module = Record<string, unknown>;

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/**
 * Picks the handler and its style. With `style:` in the manifest that style is used;
 * without it, the style is detected only when the exports leave no doubt:
 *   - a default export with fetch()          → workers (Web-standard)
 *   - handler: file.export, or an export `handler` → lambda
 * A bare exported function (`module.exports = fn`) could be OpenFaaS, Express-style or
 * others, so it needs `style:`.
 */
export function loadStyle(mod: Module, exportName: string | undefined, style: string | undefined, info: FunctionInfo): LoadedFunction {
  // A CommonJS bundle arrives as `export default module.exports`.
  const def = mod.default as Module | undefined;
  const named = (name: string) => mod[name] ?? (def && typeof def === 'object' ? def[name] : undefined);
  const fnExport = (fallbacks: string[]): unknown => {
    if (exportName !== undefined && exportName !== 'default') return named(exportName);
    if (typeof def === 'function') return def;
    for (const name of fallbacks) if (typeof named(name) === 'function') return named(name);
    return undefined;
  };
  const need = (what: string): never => {
    throw new ShimError('NIMBUS_HANDLER_NOT_FOUND', `${what} (the bundle exports: ${listExports(mod)})`);
  };

  // Code written for @google-cloud/functions-framework registered its functions while
  // it was imported: that is unambiguous, and names the function to run.
  const ff = (globalThis as { [REGISTRY]?: FunctionsFrameworkRegistry })[REGISTRY];
  if (ff && (ff.http.size > 0 || ff.cloudEvent.size > 0) && (style === undefined || style === 'gcf')) {
    const all = [...ff.http.keys(), ...ff.cloudEvent.keys()];
    const name = exportName !== undefined && exportName !== 'default' ? exportName : all.length === 1 ? all[0] : undefined;
    if (name === undefined) return need(`the module registers several functions (${all.join(', ')}): pick one with handler: <file>.<name>`);
    const httpFn = ff.http.get(name);
    if (httpFn) return loadExpress(httpFn as never, 'gcf', info);
    const eventFn = ff.cloudEvent.get(name);
    if (eventFn) return loadCloudEvent(eventFn as never, info);
    return need(`no function registered as "${name}" (registered: ${all.join(', ')})`);
  }

  // The same for the Azure Functions v4 model (app.http and app.timer from @azure/functions).
  const az = (globalThis as { [AZURE_REGISTRY]?: AzureRegistry })[AZURE_REGISTRY];
  if (az && (az.http.size > 0 || az.timer.size > 0) && (style === undefined || style === 'azure')) {
    const all = [...az.http.keys()];
    if (all.length === 0) return loadAzureHttp(undefined, undefined, info, az.timer);
    const name = exportName !== undefined && exportName !== 'default' ? exportName : all.length === 1 ? all[0] : undefined;
    if (name === undefined) return need(`the module registers several HTTP functions (${all.join(', ')}): pick one with handler: <file>.<name>`);
    const options = az.http.get(name);
    if (!options) return need(`no HTTP function registered as "${name}" (registered: ${all.join(', ')})`);
    return loadAzureHttp(name, options, info, az.timer);
  }
  if (style === 'azure') return need('style azure needs app.http(name, { handler }) or app.timer(name, { schedule, handler }) from @azure/functions');

  // And for the Fn Project FDK (fdk.handle(fn)).
  const fdk = (globalThis as { [FDK_REGISTRY]?: { fn: FdkFunction; inputMode: string } })[FDK_REGISTRY];
  if (fdk && (style === undefined || style === 'fn')) return loadFn(fdk.fn, fdk.inputMode, info);
  if (style === 'fn') return need('style fn needs fdk.handle((input, ctx) => ...) from @fnproject/fdk');

  switch (style) {
    case 'workers': {
      const target = exportName && exportName !== 'default' ? named(exportName) : def;
      if (target && typeof (target as Module).fetch === 'function') return loadWorkers(target as never, info);
      return need('style workers needs `export default { fetch(request, env, ctx) }`');
    }
    case 'lambda': {
      const fn = exportName !== undefined && exportName !== 'default' ? named(exportName) : named('handler');
      if (typeof fn === 'function') return loadLambda(fn as never, info);
      return need(`style lambda needs a function export named "${exportName ?? 'handler'}"`);
    }
    case 'openfaas': {
      const fn = fnExport(['handle', 'handler']);
      if (typeof fn === 'function') return loadOpenFaas(fn as never, info);
      return need('style openfaas needs `module.exports = async (event, context) => ...` (or export default / handle)');
    }
    case 'gcf': {
      const fn = fnExport([]);
      if (typeof fn === 'function') return loadExpress(fn as never, 'gcf', info);
      return need('style gcf needs `exports.<name> = (req, res) => ...` with handler: <file>.<name>, or a default export');
    }
    case 'vercel': {
      // Web-standard method exports (export function GET(request)) or a (req, res) default.
      const methods = HTTP_METHODS.filter((m) => typeof named(m) === 'function');
      if (methods.length > 0 && (exportName === undefined || exportName === 'default')) {
        const route = {
          fetch(request: Request) {
            const fn = named(request.method) as ((r: Request) => Response | Promise<Response>) | undefined;
            if (fn) return fn(request);
            return new Response(null, { status: 405, headers: { allow: methods.join(', ') } });
          },
        };
        return { ...loadWorkers(route as never, info), style: 'vercel' };
      }
      const fn = fnExport([]);
      if (typeof fn === 'function') return loadExpress(fn as never, 'vercel', info);
      return need('style vercel needs `export default function handler(req, res)` or method exports such as `export function GET(request)`');
    }
    case 'fission': {
      const fn = fnExport([]);
      if (typeof fn === 'function') return loadFission(fn as never, info);
      return need('style fission needs `module.exports = async (context) => ({ status, body })`');
    }
    case 'netlify':
      return loadNetlify(mod, info) ?? need('style netlify needs `export default async (req, context) => Response` (v2) or `exports.handler` (v1)');
    case 'openwhisk': {
      const fn = exportName !== undefined && exportName !== 'default' ? named(exportName) : named('main');
      if (typeof fn === 'function') return loadOpenWhisk(fn as never, info);
      return need('style openwhisk needs a function export named "main" (exports.main = main)');
    }
    case 'knative': {
      const fn = exportName !== undefined && exportName !== 'default' ? named(exportName) : (named('handle') ?? (typeof def === 'function' ? def : undefined));
      if (typeof fn === 'function') return loadKnative(fn as never, info);
      return need('style knative needs `handle(context, body)` exported (module.exports = { handle })');
    }
    case undefined:
      break;
    default:
      return need(`unknown style "${style}"`);
  }

  if (exportName !== undefined && exportName !== 'default') {
    const fn = named(exportName);
    if (typeof fn !== 'function') return need(`the bundle has no function export named "${exportName}"`);
    return loadLambda(fn as never, info);
  }
  if (def && (typeof def === 'object' || typeof def === 'function') && typeof def.fetch === 'function') return loadWorkers(def as never, info);
  // Netlify v2 is the only style that pairs a default function with `export const config`.
  if (typeof def === 'function' && mod.config && typeof mod.config === 'object') return loadNetlify(mod, info) as LoadedFunction;
  const handler = named('handler');
  if (typeof handler === 'function') return loadLambda(handler as never, info);
  if (typeof named('handle') === 'function') return loadKnative(named('handle') as never, info);
  if (typeof named('main') === 'function') return loadOpenWhisk(named('main') as never, info);
  if (typeof def === 'function') {
    return need('the default export is a function, which several styles use: set `style:` in nimbus.yaml (e.g. style: openfaas)');
  }
  return need('no handler found: export `default { fetch }` (Web-standard) or `handler` (Lambda), or set `style:`');
}

function listExports(mod: Module): string {
  const def = mod.default;
  const names = Object.keys(mod).map((k) => (k === 'default' && typeof def === 'function' ? 'default (a function)' : k));
  if (def && typeof def === 'object') names.push(...Object.keys(def).map((k) => `default.${k}`));
  return names.length > 0 ? names.join(', ') : 'nothing';
}
