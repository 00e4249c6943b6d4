import type { IncomingMessage, ServerResponse } from 'node:http';
import { RETRY_AFTER_S } from '../config/defaults.js';
import { type ErrorCode, NimbusError, toNimbusError } from './errors.js';

export const REQUEST_ID_HEADER = 'x-nimbus-request-id';

/** Renders any error as the JSON error body with its status; unknown errors become a bare 500. */
/** Headers about one connection, never forwarded between client, gateway, function and callback. */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

/** Every error answer of the platform names its code here as well as in the JSON body. */
export const ERROR_CODE_HEADER = 'x-nimbus-error-code';

export function sendError(res: ServerResponse, err: unknown, requestId?: string): void {
  const e = toNimbusError(err);
  if (e.code === 'NIMBUS_INTERNAL' && !(err instanceof NimbusError)) console.error('nimbus: internal error', requestId ?? '', err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(e.toJSON(requestId));
  // The code is a header too, for answers without a body (HEAD).
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    [ERROR_CODE_HEADER]: e.code,
  };
  if (requestId) headers[REQUEST_ID_HEADER] = requestId;
  if (hasUnreadBody(res.req)) headers.connection = 'close';
  if (e.status === 429 || e.status === 503) headers['retry-after'] = RETRY_AFTER_S;
  Object.assign(headers, e.headers);
  res.writeHead(e.status, headers);
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

/** The request declared a body that has not been read to its end. */
export function hasUnreadBody(req: IncomingMessage | undefined): boolean {
  if (!req || req.complete) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Answering before the body was read (a refusal) closes the connection afterwards.
 * Otherwise Node would read the rest of the body, however large, to reuse the
 * connection: a refused upload would still cost its whole size.
 */
export function closeIfBodyUnread(res: ServerResponse): void {
  if (!res.headersSent && hasUnreadBody(res.req)) res.setHeader('connection', 'close');
}

/** Reads a whole request body, failing with 413 past the limit (checked on Content-Length first). */
export function readBody(req: IncomingMessage, limit: number, code: ErrorCode): Promise<Buffer> {
  const tooLarge = () => new NimbusError(code, `the request body is larger than ${limit} bytes`);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(tooLarge());
        req.resume();
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
