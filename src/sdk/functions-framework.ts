/**
 * What `import functions from '@google-cloud/functions-framework'` resolves to in a
 * bundle built by `nimbus deploy`: functions.http() and functions.cloudEvent() record
 * handlers where the Node shim finds them, instead of starting a server.
 */
export type HttpFunction = (req: unknown, res: unknown) => unknown;
export type CloudEventFunction = (cloudEvent: Record<string, unknown>) => unknown;

export interface FunctionsFrameworkRegistry {
  http: Map<string, HttpFunction>;
  cloudEvent: Map<string, CloudEventFunction>;
}

export const REGISTRY = Symbol.for('nimbus.functions-framework');

export function registry(): FunctionsFrameworkRegistry {
  const g = globalThis as { [REGISTRY]?: FunctionsFrameworkRegistry };
  g[REGISTRY] ??= { http: new Map(), cloudEvent: new Map() };
  return g[REGISTRY];
}

export function http(name: string, handler: HttpFunction): void {
  registry().http.set(name, handler);
}

export function cloudEvent(name: string, handler: CloudEventFunction): void {
  registry().cloudEvent.set(name, handler);
}

export function getFunction(name: string): HttpFunction | CloudEventFunction | undefined {
  return registry().http.get(name) ?? registry().cloudEvent.get(name);
}

export default { http, cloudEvent, getFunction };
