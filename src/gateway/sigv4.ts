import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

/** How far a request's X-Amz-Date may be from now, as on AWS. */
const MAX_CLOCK_SKEW_MS = 15 * 60_000;

export type SigV4Failure =
  | { code: 'MissingAuthenticationTokenException'; message: string }
  | { code: 'IncompleteSignatureException'; message: string }
  | { code: 'InvalidSignatureException'; message: string };

export interface SigV4Caller {
  accessKeyId: string;
  region: string;
}

const AUTH =
  /^AWS4-HMAC-SHA256\s+Credential=([^/\s]+)\/(\d{8})\/([^/\s]+)\/([^/\s]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/;

/**
 * Checks an AWS Signature Version 4 request (the Authorization header form the AWS SDKs
 * and CLI send) against `secret`. Nimbus accepts any access key id: the secret is what
 * is checked. The signature is recomputed over exactly the headers the client signed.
 */
export async function verifySigV4(
  req: { method: string; url: string; headers: IncomingHttpHeaders },
  body: Buffer,
  service: string,
  secret: string,
  now = Date.now(),
): Promise<SigV4Caller | SigV4Failure> {
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
  const headers: Record<string, string> = {};
  for (const name of names) {
    const value = req.headers[name];
    if (value === undefined) return { code: 'IncompleteSignatureException', message: `signed header ${name} is missing from the request` };
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const declaredHash = headers['x-amz-content-sha256'];
  if (declaredHash !== undefined && declaredHash !== createHash('sha256').update(body).digest('hex')) {
    return { code: 'InvalidSignatureException', message: 'The provided x-amz-content-sha256 header does not match what was computed.' };
  }
  const q = req.url.indexOf('?');
  const query: Record<string, string | string[]> = {};
  if (q !== -1) {
    for (const [k, v] of new URLSearchParams(req.url.slice(q + 1))) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
  }
  const signer = new SignatureV4({
    credentials: { accessKeyId, secretAccessKey: secret, sessionToken: headers['x-amz-security-token'] },
    region,
    service,
    sha256: Hash.bind(null, 'sha256'),
    // Hash the body we received; a client that sent X-Amz-Content-Sha256 signed it and it is used as is.
    applyChecksum: false,
  });
  const signed = await signer.sign(
    { method: req.method, protocol: 'http:', hostname: headers.host ?? '', path: q === -1 ? req.url : req.url.slice(0, q), query, headers, body },
    { signingDate: date, signableHeaders: new Set(names) },
  );
  const expected = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization ?? signed.headers.Authorization))?.[1] ?? '';
  if (expected.length !== signature.length || !timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) {
    return {
      code: 'InvalidSignatureException',
      message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    };
  }
  return { accessKeyId, region };
}

/** "20240102T030405Z" → Date. */
function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const date = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  return Number.isNaN(date.getTime()) ? undefined : date;
}
