/** How a Lambda payload becomes a request to a function (the Invoke API, and Event invokes through the queue). */
import { httpFromApiGatewayEvent, type PayloadFormat } from './apigw.js';
import type { BufferedRequest } from './call.js';

/** Styles that take an event and return a result; the others are HTTP handlers. */
export const EVENT_STYLES: ReadonlySet<string> = new Set(['lambda', 'openwhisk', 'lambda-runtime']);

export interface LambdaRequest extends BufferedRequest {
  /** For an HTTP handler driven by an API Gateway event: the result's payload format. */
  apiGateway?: PayloadFormat;
}

/**
 * What the function gets for a payload. Event styles get it as their event. An HTTP
 * handler gets the request an API Gateway event describes (and answers with an API
 * Gateway result), or else a POST of the payload as JSON (and answers with its body).
 */
export function requestFor(style: string, base: { requestId: string; sourceIp: string; protocol: string }, payload: Buffer, type: string): LambdaRequest {
  const direct = { ...base, method: 'POST', path: '/', headers: ['content-type', 'application/json', 'x-amz-invocation-type', type] };
  if (EVENT_STYLES.has(style)) return { head: { ...direct, event: true }, body: payload };
  const http = payload.length > 0 ? httpFromApiGatewayEvent(JSON.parse(payload.toString('utf8'))) : undefined;
  if (!http) return { head: direct, body: payload };
  return { head: { ...base, method: http.method, path: http.path, headers: http.headers }, body: http.body, apiGateway: http.format };
}
