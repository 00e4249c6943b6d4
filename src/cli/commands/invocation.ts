import { NimbusError } from '../../shared/errors.js';
import type { Command } from '../command.js';
import { adminRequest, EXIT, findTarget, print, printJson, type Target } from '../context.js';

export interface InvocationView {
  id: string;
  function: string;
  status: string;
  attempts: number;
  maxAttempts: number;
  request: { method: string; path: string; bodyBytes: number; callbackUrl: string | null };
  enqueuedAt: string;
  nextAttemptAt: string | null;
  completedAt: string | null;
  lastError: string | null;
  result: { status?: number; body?: string; bodyEncoding?: string; error?: { code: string; message: string } } | null;
  /** The X-Callback-Url delivery, once the invocation finished. */
  callback?: { url: string; status: string; attempts: number; lastError: string | null; result: { error?: { message: string } } | null } | null;
}

export async function fetchInvocation(target: Target, id: string): Promise<InvocationView> {
  const res = await adminRequest(target, 'GET', `/v1/invocations/${encodeURIComponent(id)}`);
  return ((await res.json()) as { invocation: InvocationView }).invocation;
}

/** The human view of one invocation record. */
export function printInvocation(v: InvocationView): void {
  print(`${v.id}  ${v.function}  ${v.status}  (attempt ${v.attempts} of ${v.maxAttempts})`);
  print(
    `  request    ${v.request.method} ${v.request.path}  (${v.request.bodyBytes} bytes)${v.request.callbackUrl ? `  callback ${v.request.callbackUrl}` : ''}`,
  );
  print(`  queued     ${v.enqueuedAt}`);
  if (v.nextAttemptAt) print(`  next try   ${v.nextAttemptAt}`);
  if (v.completedAt) print(`  finished   ${v.completedAt}`);
  if (v.lastError) print(`  last error ${v.lastError}`);
  const r = v.result;
  if (r?.error) print(`  result     ${r.error.code}: ${r.error.message}`);
  else if (r?.status !== undefined) {
    const body = r.bodyEncoding === 'base64' ? `(${Buffer.from(r.body ?? '', 'base64').length} bytes of binary)` : (r.body ?? '');
    print(`  result     ${r.status} ${body.length > 500 ? `${body.slice(0, 500)}…` : body}`);
  }
  const cb = v.callback;
  if (cb) {
    const why = cb.result?.error?.message ?? cb.lastError;
    print(`  callback   ${cb.status} (attempt ${cb.attempts})${why ? `: ${why}` : ''}`);
  }
}

export const invocation: Command = {
  name: 'invocation',
  summary: 'show an async invocation: status, attempts, last error, result',
  usage: `Usage: nimbus invocation <id> [--json]

Shows the record of an async invocation (nimbus invoke --async, POST
/async/<name>, a Lambda Event invoke): queued, running, succeeded, failed (a 4xx
answer, not retried) or dead (retries or maxEventAge used up; see nimbus dlq).
Records are kept 24 hours after they finish, dead letters 14 days.`,
  options: {},
  async run(positionals, values) {
    if (positionals.length !== 1) throw new NimbusError('NIMBUS_INVALID_ARGUMENT', 'invocation takes exactly one id, e.g. `nimbus invocation 3f2c…`');
    const v = await fetchInvocation(findTarget(values), positionals[0]);
    if (values.json === true) printJson(v);
    else printInvocation(v);
    return EXIT.OK;
  },
};
