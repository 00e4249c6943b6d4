import type { FunctionInfo, LoadedFunction } from './invocation.js';
import { ShimError } from './invocation.js';
import { loadLambda } from './styles/lambda.js';
import { loadWorkers } from './styles/workers.js';

type Module = Record<string, unknown>;

/**
 * Picks the handler style from what the module exports. With an export name
 * (handler: index.handler) that export must be a function (Lambda style); without one
 * a default export with fetch() is the Web-standard style and an export named
 * `handler` is Lambda style.
 */
export function loadStyle(mod: Module, exportName: string | undefined, info: FunctionInfo): LoadedFunction {
  // A CommonJS bundle arrives as `export default module.exports`.
  const def = mod.default as Module | undefined;
  if (exportName !== undefined && exportName !== 'default') {
    const fn = mod[exportName] ?? (def && typeof def === 'object' ? def[exportName] : undefined);
    if (typeof fn !== 'function') {
      throw new ShimError('NIMBUS_HANDLER_NOT_FOUND', `the bundle has no function export named "${exportName}" (it exports: ${listExports(mod)})`);
    }
    return loadLambda(fn as never, info);
  }
  if (def && (typeof def === 'object' || typeof def === 'function') && typeof def.fetch === 'function') {
    return loadWorkers(def as never, info);
  }
  const handler = mod.handler ?? (def && typeof def === 'object' ? def.handler : undefined);
  if (typeof handler === 'function') return loadLambda(handler as never, info);
  throw new ShimError(
    'NIMBUS_HANDLER_NOT_FOUND',
    `no handler found: export \`default { fetch }\` (Web-standard) or \`handler\` (Lambda); the bundle exports: ${listExports(mod)}`,
  );
}

function listExports(mod: Module): string {
  const names = Object.keys(mod);
  const def = mod.default;
  if (def && typeof def === 'object') names.push(...Object.keys(def).map((k) => `default.${k}`));
  return names.length > 0 ? names.join(', ') : 'nothing';
}
