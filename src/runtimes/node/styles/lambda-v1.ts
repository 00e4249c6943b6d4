import type { Invocation, InvocationResult } from '../invocation.js';
import { headerPairs, isTextContentType, ShimError } from '../invocation.js';
import { fromResultV2 } from './lambda-result.js';

/**
 * API Gateway REST API (proxy integration) event, payload format 1.0: single- and
 * multi-value headers and query parameters, null where there are none.
 */
export function toEventV1(inv: Invocation, body: Buffer): Record<string, unknown> {
  const { head } = inv;
  const q = head.path.indexOf('?');
  const path = q === -1 ? head.path : head.path.slice(0, q);
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [name, value] of headerPairs(head.headers)) {
    headers[name] = value;
    multiValueHeaders[name] = [...(multiValueHeaders[name] ?? []), value];
  }
  const query: Record<string, string> = {};
  const multiQuery: Record<string, string[]> = {};
  for (const [k, v] of new URLSearchParams(q === -1 ? '' : head.path.slice(q + 1))) {
    query[k] = v;
    multiQuery[k] = [...(multiQuery[k] ?? []), v];
  }
  const hasQuery = Object.keys(query).length > 0;
  const hasHeaders = Object.keys(headers).length > 0;
  const now = new Date();
  const text = isTextContentType(headers['content-type']);
  return {
    resource: '/{proxy+}',
    path,
    httpMethod: head.method,
    headers: hasHeaders ? headers : null,
    multiValueHeaders: hasHeaders ? multiValueHeaders : null,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiQuery : null,
    pathParameters: path === '/' ? null : { proxy: path.slice(1) },
    stageVariables: null,
    requestContext: {
      accountId: 'anonymous',
      apiId: 'nimbus',
      resourceId: 'proxy',
      resourcePath: '/{proxy+}',
      httpMethod: head.method,
      path,
      protocol: head.protocol,
      stage: '$default',
      domainName: headers.host ?? 'localhost',
      requestId: head.requestId,
      requestTime: now.toUTCString(),
      requestTimeEpoch: now.getTime(),
      identity: { sourceIp: head.sourceIp, userAgent: headers['user-agent'] ?? null },
    },
    body: body.length === 0 ? null : text ? body.toString('utf8') : body.toString('base64'),
    isBase64Encoded: body.length > 0 && !text,
  };
}

/** REST APIs accept only a proxy response object; anything else is a malformed response. */
export function fromResultV1(result: unknown): InvocationResult {
  if (result === null || typeof result !== 'object' || !('statusCode' in result)) {
    throw new ShimError(
      'NIMBUS_INVALID_RESPONSE',
      'with payloadFormat 1.0 the handler must return {statusCode, headers?, multiValueHeaders?, body?, isBase64Encoded?}',
    );
  }
  return fromResultV2(result);
}
