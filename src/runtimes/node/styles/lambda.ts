import type { FunctionInfo, Invocation, InvocationResult, LoadedFunction } from '../invocation.js';
import { headerPairs, isTextContentType } from '../invocation.js';
import { fromResultV2 } from './lambda-result.js';
import { fromResultV1, toEventV1 } from './lambda-v1.js';

type LambdaHandler = (event: unknown, context: LambdaContext, callback?: (err: unknown, result?: unknown) => void) => unknown;

export interface LambdaContext {
  awsRequestId: string;
  functionName: string;
  functionVersion: string;
  memoryLimitInMB: string;
  invokedFunctionArn: string;
  logGroupName: string;
  logStreamName: string;
  callbackWaitsForEmptyEventLoop: boolean;
  getRemainingTimeInMillis(): number;
}

/**
 * AWS Lambda style: `export const handler = async (event, context) => result`, or the
 * callback form `(event, context, callback)`. HTTP requests arrive as API Gateway
 * payload format 2.0 events (as Lambda function URLs send them).
 */
export function loadLambda(
  handler: LambdaHandler,
  info: FunctionInfo,
  /** Adds platform-specific fields to the event (Netlify's rawUrl, ...). */
  extend: (event: Record<string, unknown>, inv: Invocation) => Record<string, unknown> = (e) => e,
): LoadedFunction {
  const arn = `arn:aws:lambda:local:000000000000:function:${info.functionName}`;
  const v1 = info.payloadFormat === '1.0';
  return {
    style: 'lambda',
    async invoke(inv: Invocation): Promise<InvocationResult> {
      const body = await inv.readBody();
      const direct = inv.head.event === true;
      const event = direct ? parseEvent(body) : extend(v1 ? toEventV1(inv, body) : toEventV2(inv, body), inv);
      const context: LambdaContext = {
        awsRequestId: inv.head.requestId,
        functionName: info.functionName,
        functionVersion: String(info.version),
        memoryLimitInMB: String(info.memoryMB),
        invokedFunctionArn: arn,
        logGroupName: `/nimbus/${info.functionName}`,
        logStreamName: `${info.version}/${process.pid}`,
        callbackWaitsForEmptyEventLoop: true,
        getRemainingTimeInMillis: () => Math.max(0, inv.head.deadline - Date.now()),
      };
      const result = handler.length >= 3 ? await callWithCallback(handler, event, context) : await handler(event, context);
      if (direct) return eventResult(result);
      return v1 ? fromResultV1(result) : fromResultV2(result);
    },
  };
}

/** A direct event's payload: JSON, with an empty body read as {} (as Lambda does). */
export function parseEvent(body: Buffer): unknown {
  return body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
}

/** A direct invocation's result, serialised as Lambda does: JSON, undefined as null. */
export function eventResult(result: unknown): InvocationResult {
  return { head: { status: 200, headers: [['content-type', 'application/json']] }, body: Buffer.from(JSON.stringify(result ?? null)) };
}

function callWithCallback(handler: LambdaHandler, event: unknown, context: LambdaContext): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const callback = (err: unknown, result?: unknown) => (err ? reject(err) : resolve(result));
    try {
      const returned = handler(event, context, callback);
      if (returned && typeof (returned as Promise<unknown>).then === 'function') (returned as Promise<unknown>).then(resolve, reject);
    } catch (err) {
      reject(err);
    }
  });
}

/** API Gateway HTTP API / function URL event, payload format 2.0. */
export function toEventV2(inv: Invocation, body: Buffer): Record<string, unknown> {
  const { head } = inv;
  const q = head.path.indexOf('?');
  const rawPath = q === -1 ? head.path : head.path.slice(0, q);
  const rawQueryString = q === -1 ? '' : head.path.slice(q + 1);
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (const [name, value] of headerPairs(head.headers)) {
    if (name === 'cookie') {
      for (const c of value.split(';')) if (c.trim()) cookies.push(c.trim());
      continue;
    }
    headers[name] = name in headers ? `${headers[name]},${value}` : value;
  }
  const now = new Date();
  const event: Record<string, unknown> = {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers,
    requestContext: {
      accountId: 'anonymous',
      apiId: 'nimbus',
      domainName: headers.host ?? 'localhost',
      domainPrefix: (headers.host ?? 'localhost').split('.')[0],
      http: { method: head.method, path: rawPath, protocol: head.protocol, sourceIp: head.sourceIp, userAgent: headers['user-agent'] ?? '' },
      requestId: head.requestId,
      routeKey: '$default',
      stage: '$default',
      time: formatApiGatewayTime(now),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: false,
  };
  if (cookies.length > 0) event.cookies = cookies;
  if (rawQueryString) {
    const params: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(rawQueryString)) params[k] = k in params ? `${params[k]},${v}` : v;
    event.queryStringParameters = params;
  }
  if (body.length > 0) {
    const text = isTextContentType(headers['content-type']);
    event.body = text ? body.toString('utf8') : body.toString('base64');
    event.isBase64Encoded = !text;
  }
  return event;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** "12/Mar/2020:19:03:58 +0000", the format of requestContext.time. */
function formatApiGatewayTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}
