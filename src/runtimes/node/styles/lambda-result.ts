import type { InvocationResult } from '../invocation.js';

/** Maps a handler's result as API Gateway does for payload format 2.0. */
export function fromResultV2(result: unknown): InvocationResult {
  if (result !== null && typeof result === 'object' && 'statusCode' in result) {
    const r = result as {
      statusCode: unknown;
      headers?: Record<string, unknown>;
      multiValueHeaders?: Record<string, unknown[]>;
      cookies?: string[];
      body?: unknown;
      isBase64Encoded?: boolean;
    };
    const headers: [string, string][] = [];
    for (const [k, v] of Object.entries(r.headers ?? {})) if (v !== undefined && v !== null) headers.push([k.toLowerCase(), String(v)]);
    for (const [k, vs] of Object.entries(r.multiValueHeaders ?? {})) for (const v of vs ?? []) headers.push([k.toLowerCase(), String(v)]);
    for (const c of r.cookies ?? []) headers.push(['set-cookie', String(c)]);
    const status = Number(r.statusCode);
    let body: Buffer | null = null;
    if (r.body !== undefined && r.body !== null) {
      const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
      body = r.isBase64Encoded ? Buffer.from(text, 'base64') : Buffer.from(text);
    }
    return { head: { status: Number.isInteger(status) && status >= 100 && status <= 599 ? status : 500, headers }, body };
  }
  // Not a response object: API Gateway answers 200 with the value as a JSON body
  // (a string is sent as it is).
  const text = typeof result === 'string' ? result : JSON.stringify(result ?? null);
  return { head: { status: 200, headers: [['content-type', 'application/json']] }, body: Buffer.from(text) };
}
