/**
 * What `import { app } from '@azure/functions'` resolves to in a bundle built by
 * `nimbus deploy` (v4 programming model): app.http() and friends record handlers where
 * the Node shim finds them; HttpResponse is a plain response holder.
 */
export interface HttpOptions {
  methods?: string[];
  authLevel?: string;
  route?: string;
  handler: (request: unknown, context: unknown) => unknown;
}

export interface TimerOptions {
  schedule: string;
  handler: (timer: unknown, context: unknown) => unknown;
}

export interface AzureRegistry {
  http: Map<string, HttpOptions>;
  timer: Map<string, TimerOptions>;
}

export const REGISTRY = Symbol.for('nimbus.azure-functions');

export function registry(): AzureRegistry {
  const g = globalThis as { [REGISTRY]?: AzureRegistry };
  g[REGISTRY] ??= { http: new Map(), timer: new Map() };
  return g[REGISTRY];
}

type HandlerOrOptions = HttpOptions['handler'] | Omit<HttpOptions, 'methods'>;

function method(verb: string) {
  return (name: string, options: HandlerOrOptions) => {
    const opts = typeof options === 'function' ? { handler: options } : options;
    registry().http.set(name, { ...opts, methods: [verb] });
  };
}

export const app = {
  http(name: string, options: HttpOptions): void {
    registry().http.set(name, options);
  },
  get: method('GET'),
  post: method('POST'),
  put: method('PUT'),
  patch: method('PATCH'),
  deleteRequest: method('DELETE'),
  timer(name: string, options: TimerOptions): void {
    registry().timer.set(name, options);
  },
  setup(): void {},
};

/** A response object a handler may return instead of a plain HttpResponseInit. */
export class HttpResponse {
  status?: number;
  body?: unknown;
  jsonBody?: unknown;
  headers?: Record<string, string> | Headers;
  cookies?: { name: string; value: string }[];

  constructor(
    init: { status?: number; body?: unknown; jsonBody?: unknown; headers?: Record<string, string>; cookies?: { name: string; value: string }[] } = {},
  ) {
    Object.assign(this, init);
  }
}

export default { app, HttpResponse };
