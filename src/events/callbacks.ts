import { randomUUID } from 'node:crypto';
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { CALLBACK_ATTEMPTS, CALLBACK_MAX_AGE_MS, CALLBACK_TIMEOUT_MS, MAX_RESULT_BYTES } from '../config/defaults.js';
import { NimbusError } from '../shared/errors.js';
import { HOP_BY_HOP } from '../shared/http.js';
import { type CallbackPolicy, hostOf } from './callback-policy.js';
import type { NewMessage } from './queue.js';

/** A result to POST to an X-Callback-Url (queue "callback"). */
export interface CallbackMeta {
  kind: 'callback';
  url: string;
  fn: string;
  callId: string;
  status: number;
  headers: [string, string][];
  durationMs: number;
}

export const CALLBACK_QUEUE = 'callback';

/** What the callback's POST came to: delivered, refused by the policy (final), or failed (retried). */
export type CallbackOutcome = { ok: true; status: number } | { ok: false; refused: boolean; error: string };

/**
 * The callback message for an invocation's final outcome, with an id chosen here so
 * that the invocation's record can point at it (GET /v1/invocations/<id> shows it).
 */
export function callbackMessage(
  url: string,
  fn: string,
  callId: string,
  reply: { status: number; headers: [string, string][]; body: Buffer },
  durationMs: number,
  now: number,
): NewMessage & { id: string } {
  const meta: CallbackMeta = { kind: 'callback', url, fn, callId, status: reply.status, headers: reply.headers, durationMs };
  return {
    id: randomUUID(),
    queue: CALLBACK_QUEUE,
    meta: meta as unknown as Record<string, unknown>,
    body: reply.body.subarray(0, MAX_RESULT_BYTES),
    maxAttempts: CALLBACK_ATTEMPTS,
    expiresAt: now + CALLBACK_MAX_AGE_MS,
  };
}

/**
 * POSTs a result to its callback URL, with OpenFaaS's callback headers. The policy is
 * applied to the address actually connected to: an IP literal before connecting, a
 * name through the request's `lookup`, so nothing is sent to a refused address.
 * Redirects are not followed.
 */
export async function postCallback(meta: CallbackMeta, body: Buffer, policy: CallbackPolicy): Promise<CallbackOutcome> {
  let url: URL;
  try {
    url = new URL(meta.url);
    const host = hostOf(url);
    const reason = isIP(host) ? policy.refusal(host) : undefined;
    if (reason !== undefined) return { ok: false, refused: true, error: `${meta.url} was not called: ${host} is not a public address (${reason})` };
  } catch {
    return { ok: false, refused: true, error: `${JSON.stringify(meta.url)} is not a URL` };
  }
  const headers: OutgoingHttpHeaders = {};
  for (const [k, v] of meta.headers) {
    const name = k.toLowerCase();
    if (HOP_BY_HOP.has(name) || name === 'content-length' || name === 'host') continue;
    const prev = headers[name];
    headers[name] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [String(prev)]), v];
  }
  Object.assign(headers, {
    'x-call-id': meta.callId,
    'x-function-name': meta.fn,
    'x-function-status': String(meta.status),
    'x-duration-seconds': (meta.durationMs / 1000).toFixed(6),
    'content-length': String(body.length),
  });
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    // agent: false, a connection of its own: a pooled keep-alive socket would skip the lookup that checks the address.
    const options = { method: 'POST', headers, agent: false, lookup: policy.lookup, signal: AbortSignal.timeout(CALLBACK_TIMEOUT_MS) };
    const req = send(url, options, (res) => {
      res.resume();
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        resolve(status >= 200 && status < 300 ? { ok: true, status } : { ok: false, refused: false, error: `the callback URL answered ${status}` });
      });
      res.on('error', (err) => resolve({ ok: false, refused: false, error: `the callback URL's answer broke off: ${err.message}` }));
    });
    req.on('error', (err) => {
      if (err instanceof NimbusError && err.code === 'NIMBUS_CALLBACK_REFUSED')
        resolve({ ok: false, refused: true, error: `${meta.url} was not called: ${err.message}` });
      else resolve({ ok: false, refused: false, error: `the callback URL could not be reached: ${err.message}` });
    });
    req.end(body);
  });
}
