import type { FunctionInfo, Invocation, InvocationResult, LoadedFunction } from '../invocation.js';
import { ExpressRequest, ExpressResponse } from './express.js';

type FissionCallback = (status: number, body?: unknown, headers?: Record<string, string>) => void;
type FissionHandler = (context: { request: ExpressRequest; response: ExpressResponse }, callback: FissionCallback) => unknown;

/**
 * Fission's Node environment: `module.exports = async (context) => ({ status, body, headers })`,
 * with `context.request` / `context.response` as Express objects and the older
 * `(context, callback)` form where `callback(status, body, headers)` answers.
 */
export function loadFission(handler: FissionHandler, _info: FunctionInfo): LoadedFunction {
  return {
    style: 'fission',
    async invoke(inv: Invocation): Promise<InvocationResult> {
      const request = new ExpressRequest(inv, await inv.readBody());
      return new Promise<InvocationResult>((resolve, reject) => {
        const response = new ExpressResponse(resolve);
        const callback: FissionCallback = (status, body, headers) => {
          if (!status || response.headersSent) return;
          if (headers) response.set(headers);
          response.status(status).send(body);
        };
        Promise.resolve()
          .then(() => handler({ request, response }, callback))
          .then((result) => {
            if (result && typeof result === 'object' && 'status' in result) {
              const r = result as { status: number; body?: unknown; headers?: Record<string, string> };
              callback(r.status, r.body, r.headers);
            }
          })
          .catch((err: unknown) => {
            if (!response.headersSent) reject(err);
            else response.end();
          });
      });
    },
  };
}
