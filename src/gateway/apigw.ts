import { isTextContentType } from '../runtimes/node/invocation.js';
import type { BufferedResponse } from './call.js';

export type PayloadFormat = '1.0' | '2.0';

export interface HttpFromEvent {
  format: PayloadFormat;
  method: string;
  /** Path and query. */
  path: string;
  /** Flat [name, value, ...] as node:http's rawHeaders. */
  headers: string[];
  body: Buffer;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);
const strings = (v: unknown): [string, string][] =>
  isObject(v)
    ? Object.entries(v)
        .filter(([, x]) => x !== null && x !== undefined)
        .map(([k, x]) => [k, String(x)])
    : [];

/**
 * The HTTP request an API Gateway event describes (payload format 2.0 or 1.0), or
 * undefined for any other payload. The Lambda Invoke API uses it to drive functions
 * written as HTTP handlers, as the AWS Lambda Web Adapter does on Lambda.
 */
export function httpFromApiGatewayEvent(event: unknown): HttpFromEvent | undefined {
  if (!isObject(event)) return undefined;
  const rc = isObject(event.requestContext) ? event.requestContext : {};
  const body = typeof event.body === 'string' ? Buffer.from(event.body, event.isBase64Encoded === true ? 'base64' : 'utf8') : Buffer.alloc(0);
  if (event.version === '2.0' && isObject(rc.http) && typeof rc.http.method === 'string') {
    const rawPath = typeof event.rawPath === 'string' ? event.rawPath : typeof rc.http.path === 'string' ? rc.http.path : '/';
    const query = typeof event.rawQueryString === 'string' && event.rawQueryString !== '' ? `?${event.rawQueryString}` : '';
    const headers = strings(event.headers).flat();
    if (Array.isArray(event.cookies) && event.cookies.length > 0) headers.push('cookie', event.cookies.map(String).join('; '));
    return { format: '2.0', method: rc.http.method, path: rawPath + query, headers, body };
  }
  if (typeof event.httpMethod === 'string' && typeof event.path === 'string') {
    const params = new URLSearchParams();
    if (isObject(event.multiValueQueryStringParameters)) {
      for (const [k, vs] of Object.entries(event.multiValueQueryStringParameters)) for (const v of Array.isArray(vs) ? vs : [vs]) params.append(k, String(v));
    } else for (const [k, v] of strings(event.queryStringParameters)) params.append(k, v);
    const query = params.size > 0 ? `?${params}` : '';
    const headers: string[] = [];
    if (isObject(event.multiValueHeaders)) {
      for (const [k, vs] of Object.entries(event.multiValueHeaders)) for (const v of Array.isArray(vs) ? vs : [vs]) headers.push(k, String(v));
    } else headers.push(...strings(event.headers).flat());
    return { format: '1.0', method: event.httpMethod, path: event.path + query, headers, body };
  }
  return undefined;
}

/** An HTTP response as the API Gateway result of the given payload format. */
export function apiGatewayResult(format: PayloadFormat, response: BufferedResponse): Json {
  const type = response.head.headers.find(([k]) => k === 'content-type')?.[1];
  const text = response.body.length === 0 || isTextContentType(type);
  const body = text ? response.body.toString('utf8') : response.body.toString('base64');
  if (format === '2.0') {
    const headers: Record<string, string> = {};
    const cookies: string[] = [];
    for (const [k, v] of response.head.headers) {
      if (k === 'set-cookie') cookies.push(v);
      else headers[k] = k in headers ? `${headers[k]},${v}` : v;
    }
    const out: Json = { statusCode: response.head.status, headers, body, isBase64Encoded: !text };
    if (cookies.length > 0) out.cookies = cookies;
    return out;
  }
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [k, v] of response.head.headers) {
    headers[k] = v;
    multiValueHeaders[k] = [...(multiValueHeaders[k] ?? []), v];
  }
  return { statusCode: response.head.status, headers, multiValueHeaders, body, isBase64Encoded: !text };
}
