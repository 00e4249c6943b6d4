import type { IncomingMessage } from 'node:http';
import type { NimbusError } from '../shared/errors.js';
import { readBody } from '../shared/http.js';
import { checkDeclaredHash, checkSigV4Head, type SigV4Caller, type SigV4Failure, verifySigV4Signature } from './sigv4.js';

/** An error in the Lambda API's own shape: x-amzn-ErrorType plus {Type, Message}. */
export class LambdaError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const refused = (f: SigV4Failure) => new LambdaError(403, f.code, f.message);

/**
 * Bytes the Lambda API may hold at once, over all requests, for bodies whose signature
 * can only be checked once they have arrived (no signed X-Amz-Content-Sha256).
 * Reservations are made from the head, before a byte of the body is read.
 */
export class ByteBudget {
  #left: number;

  constructor(readonly total: number) {
    this.#left = total;
  }

  get left(): number {
    return this.#left;
  }

  tryReserve(bytes: number): boolean {
    if (bytes > this.#left) return false;
    this.#left -= bytes;
    return true;
  }

  release(bytes: number): void {
    this.#left = Math.min(this.total, this.#left + bytes);
  }
}

/**
 * Authenticates a Lambda API request and reads its body, in this order, so that an
 * anonymous client cannot make the platform hold its body:
 *  1. Everything the head alone shows (Authorization present and well formed, the
 *     credential's scope, X-Amz-Date within 15 minutes, signed headers present) and a
 *     Content-Length within `limit`: refused before a byte of the body is read.
 *  2. A signed X-Amz-Content-Sha256 (the AWS SDKs for JavaScript send one): the
 *     signature is verified against it, still before the body is read; then the body
 *     is read (at most `limit` bytes) and must hash to it.
 *  3. Without one (the AWS CLI): the body is read, at most `limit` bytes and within the
 *     platform-wide `budget` for unverified bodies, then the signature is verified.
 */
export async function readSignedRequest(
  req: IncomingMessage,
  token: string,
  limit: number,
  budget: ByteBudget,
): Promise<{ body: Buffer; caller: SigV4Caller }> {
  const signed = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers };
  const head = checkSigV4Head(signed, 'lambda');
  if ('code' in head) throw refused(head);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw tooLarge(limit);
  if (head.declaredHash !== undefined) {
    const caller = await verifySigV4Signature(head, signed, token);
    if ('code' in caller) throw refused(caller);
    const body = await readCapped(req, limit);
    const mismatch = checkDeclaredHash(head, body);
    if (mismatch) throw refused(mismatch);
    return { body, caller };
  }
  // A chunked body may be as large as the limit: that much is reserved.
  const reserved = req.headers['content-length'] === undefined ? limit : declared;
  if (!budget.tryReserve(reserved)) {
    throw new LambdaError(
      503,
      'ServiceException',
      'Too many request bodies are waiting for their signature to be checked; retry, or sign X-Amz-Content-Sha256 so the signature is checked before the body is sent',
    );
  }
  try {
    const body = await readCapped(req, limit);
    const caller = await verifySigV4Signature(head, signed, token, body);
    if ('code' in caller) throw refused(caller);
    return { body, caller };
  } finally {
    budget.release(reserved);
  }
}

const tooLarge = (limit: number) => new LambdaError(413, 'RequestTooLargeException', `Request must be smaller than ${limit} bytes for this operation`);

async function readCapped(req: IncomingMessage, limit: number): Promise<Buffer> {
  try {
    return await readBody(req, limit, 'NIMBUS_PAYLOAD_TOO_LARGE');
  } catch (err) {
    if ((err as NimbusError).code === 'NIMBUS_PAYLOAD_TOO_LARGE') throw tooLarge(limit);
    throw err;
  }
}
