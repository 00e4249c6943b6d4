import type { NimbusError } from '../shared/errors.js';

/**
 * The wait before retry number `attempt` (1 = the first retry): exponential from
 * `baseMs`, capped at `capMs`, with "equal jitter" (half fixed, half random) so
 * retries of many failed events spread out but never come back at once.
 *
 * @example retryDelay(1, 1000, 300000, () => 0.5) // → 750
 */
export function retryDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** What an attempt's outcome means for the event: done, done and failed, or try again. */
export type Verdict = 'succeeded' | 'failed' | 'retry';

/**
 * Timeouts, crashes, 5xx and 429 are worth another attempt; any other 4xx is the
 * event's own fault and would fail the same way again; 1xx-3xx is success.
 */
export function judge(outcome: { status: number } | { error: NimbusError }): Verdict {
  if ('error' in outcome) return outcome.error.code === 'NIMBUS_FUNCTION_NOT_FOUND' ? 'failed' : 'retry';
  if (outcome.status === 429 || outcome.status >= 500) return 'retry';
  return outcome.status >= 400 ? 'failed' : 'succeeded';
}
