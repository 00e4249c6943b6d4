import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

/** How far a request's X-Amz-Date may be from now, as on AWS. */
const MAX_CLOCK_SKEW_MS = 15 * 60_000;
const CONTENT_SHA256 = 'x-amz-content-sha256';

export type SigV4Failure =
  | { code: 'MissingAuthenticationTokenException'; message: string }
  | { code: 'IncompleteSignatureException'; message: string }
  | { code: 'InvalidSignatureException'; message: string };

export interface SigV4Caller {
  accessKeyId: string;
  region: string;
}

export interface SigV4Request {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/** What checkSigV4Head found in a request's head: enough to verify the signature once the payload's hash is known. */
export interface SigV4Head {
  accessKeyId: string;
  region: string;
  service: string;
  date: Date;
  signedHeaders: string[];
  signature: string;
  /** The values of the signed headers, by lower-case name. */
  headers: Record<string, string>;
  /** A signed X-Amz-Content-Sha256: the signature covers it, so it can be checked before the body arrives. */
  declaredHash: string | undefined;
}

const AUTH =
  /^AWS4-HMAC-SHA256\s+Credential=([^/\s]+)\/(\d{8})\/([^/\s]+)\/([^/\s]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Everything about an AWS Signature Version 4 request (the Authorization header form the
 * AWS SDKs and CLI send) that can be checked without its body: the header is there and
 * well formed, the credential is scoped to `service` and to the X-Amz-Date, that date is
 * within 15 minutes of now, and every signed header is present. Nimbus accepts any
 * access key id: the secret is what verifySigV4Signature checks.
 */
export function checkSigV4Head(req: SigV4Request, service: string, now = Date.now()): SigV4Head | SigV4Failure {
  const header = req.headers.authorization;
  if (!header) return { code: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' };
  const m = AUTH.exec(header.trim());
  if (!m) {
    return {
      code: 'IncompleteSignatureException',
      message: 'Authorization header requires AWS4-HMAC-SHA256 with Credential, SignedHeaders and Signature parameters',
    };
  }
  const [, accessKeyId, shortDate, region, signedService, signedHeaders, signature] = m;
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const date = parseAmzDate(amzDate);
  if (!date || !amzDate.startsWith(shortDate))
    return { code: 'IncompleteSignatureException', message: 'X-Amz-Date is missing, malformed or does not match the credential scope' };
  if (Math.abs(now - date.getTime()) > MAX_CLOCK_SKEW_MS) {
    return { code: 'InvalidSignatureException', message: `Signature expired: ${amzDate} is more than 15 minutes from the server time` };
  }
  if (signedService !== service) return { code: 'InvalidSignatureException', message: `Credential should be scoped to correct service: '${service}'` };
  const names = signedHeaders.split(';');
  if (!names.includes('host')) return { code: 'IncompleteSignatureException', message: 'the Host header must be signed' };
  const headers: Record<string, string> = {};
  for (const name of names) {
    const value = req.headers[name];
    if (value === undefined) return { code: 'IncompleteSignatureException', message: `signed header ${name} is missing from the request` };
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const declaredHash = headers[CONTENT_SHA256];
  if (declaredHash !== undefined && !SHA256_HEX.test(declaredHash)) {
    // UNSIGNED-PAYLOAD and streaming signatures leave the body unsigned: refused, as before, but now before it is read.
    return { code: 'InvalidSignatureException', message: 'X-Amz-Content-Sha256 must be the hex SHA-256 of the payload; unsigned payloads are not accepted' };
  }
  return { accessKeyId, region, service, date, signedHeaders: names, signature, headers, declaredHash };
}

/**
 * Recomputes the signature over exactly the headers the client signed. `body` may be
 * left out when the head has a declared hash: the signature is then checked against
 * that hash, before the body is read, and checkDeclaredHash compares it with the body
 * once it has arrived.
 */
export async function verifySigV4Signature(head: SigV4Head, req: SigV4Request, secret: string, body?: Buffer): Promise<SigV4Caller | SigV4Failure> {
  if (body === undefined && head.declaredHash === undefined) throw new Error('verifySigV4Signature needs the body when no X-Amz-Content-Sha256 was signed');
  const q = req.url.indexOf('?');
  const query: Record<string, string | string[]> = {};
  if (q !== -1) {
    for (const [k, v] of new URLSearchParams(req.url.slice(q + 1))) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
  }
  const { headers } = head;
  const signer = new SignatureV4({
    credentials: { accessKeyId: head.accessKeyId, secretAccessKey: secret, sessionToken: headers['x-amz-security-token'] },
    region: head.region,
    service: head.service,
    sha256: Hash.bind(null, 'sha256'),
    // Hash the body we received; with a signed X-Amz-Content-Sha256 the signer takes that header as the payload's hash.
    applyChecksum: false,
  });
  const signed = await signer.sign(
    { method: req.method, protocol: 'http:', hostname: headers.host ?? '', path: q === -1 ? req.url : req.url.slice(0, q), query, headers, body },
    { signingDate: head.date, signableHeaders: new Set(head.signedHeaders) },
  );
  const expected = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization ?? signed.headers.Authorization))?.[1] ?? '';
  if (expected.length !== head.signature.length || !timingSafeEqual(Buffer.from(expected), Buffer.from(head.signature))) {
    return {
      code: 'InvalidSignatureException',
      message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    };
  }
  return { accessKeyId: head.accessKeyId, region: head.region };
}

/** The body that arrived is the one whose hash was signed. */
export function checkDeclaredHash(head: SigV4Head, body: Buffer): SigV4Failure | undefined {
  if (head.declaredHash === undefined || head.declaredHash === createHash('sha256').update(body).digest('hex')) return undefined;
  return { code: 'InvalidSignatureException', message: 'The provided x-amz-content-sha256 header does not match what was computed.' };
}

/** "20240102T030405Z" → Date. */
function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const date = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  return Number.isNaN(date.getTime()) ? undefined : date;
}
