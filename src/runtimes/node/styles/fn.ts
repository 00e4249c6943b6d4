import type { FdkFunction } from '../../../sdk/fnproject-fdk.js';
import type { FunctionInfo, Invocation, InvocationResult, LoadedFunction } from '../invocation.js';
import { headerPairs } from '../invocation.js';

/**
 * Fn Project functions: `fdk.handle((input, ctx) => result)` from @fnproject/fdk. The
 * input is parsed as JSON when the request says so (inputMode json, the default), or
 * given as a string or Buffer; objects come back as JSON.
 */
export function loadFn(fn: FdkFunction, inputMode: string, info: FunctionInfo): LoadedFunction {
  return {
    style: 'fn',
    async invoke(inv: Invocation): Promise<InvocationResult> {
      const raw = await inv.readBody();
      const headers: Record<string, string[]> = {};
      for (const [k, v] of headerPairs(inv.head.headers)) headers[k] = [...(headers[k] ?? []), v];
      const type = (headers['content-type']?.[0] ?? '').split(';')[0].trim();
      let input: unknown = raw.toString('utf8');
      if (inputMode === 'buffer') input = raw;
      else if (inputMode === 'json' && type === 'application/json' && raw.length > 0) input = JSON.parse(raw.toString('utf8'));
      const out: [string, string][] = [];
      let status = 200;
      let contentType: string | undefined;
      const setHeader = (k: string, ...v: string[]) => {
        for (let i = out.length - 1; i >= 0; i--) if (out[i][0] === k.toLowerCase()) out.splice(i, 1);
        for (const value of v) out.push([k.toLowerCase(), value]);
      };
      const ctx = {
        config: { ...info.env },
        callID: inv.head.requestId,
        fnID: info.functionName,
        deadline: new Date(inv.head.deadline),
        headers,
        getHeader: (k: string) => headers[k.toLowerCase()]?.[0] ?? null,
        getAllHeaderValues: (k: string) => headers[k.toLowerCase()] ?? [],
        setResponseHeader: setHeader,
        addResponseHeader: (k: string, ...v: string[]) => {
          for (const value of v) out.push([k.toLowerCase(), value]);
        },
        get responseContentType() {
          return contentType;
        },
        set responseContentType(v: string | undefined) {
          contentType = v;
        },
        httpGateway: {
          requestURL: inv.head.path,
          method: inv.head.method,
          headers,
          getHeader: (k: string) => headers[k.toLowerCase()]?.[0] ?? null,
          setResponseHeader: setHeader,
          set statusCode(code: number) {
            status = code;
          },
          get statusCode() {
            return status;
          },
        },
      };
      const result = await fn(input, ctx);
      let body: Buffer | null = null;
      if (Buffer.isBuffer(result)) {
        body = result;
        contentType ??= 'application/octet-stream';
      } else if (typeof result === 'string') {
        body = Buffer.from(result);
        contentType ??= 'text/plain';
      } else if (result !== undefined && result !== null) {
        body = Buffer.from(JSON.stringify(result));
        contentType ??= 'application/json';
      }
      if (contentType && !out.some(([k]) => k === 'content-type')) out.push(['content-type', contentType]);
      return { head: { status, headers: out }, body };
    },
  };
}
