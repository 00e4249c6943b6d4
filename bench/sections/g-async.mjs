// (g) Async events: wrk POSTs to /async/bench-hello (each 202 = committed to disk) while
// the dispatcher delivers them; then one marker event is sent and awaited. Accepted/s is
// wrk's rate; delivered/s counts every accepted event over the time until the marker
// (queued after all of them) has run.
import { join } from 'node:path';
import { DURATION_S } from '../lib/knobs.mjs';
import { HERE, nimbus, wrk } from '../lib/peers.mjs';
import { f0, f1, sleep, table } from '../lib/stats.mjs';

export const title = '(g) async events (durable queue)';

async function asyncEvents(n) {
  const t0 = performance.now();
  const r = wrk(`${n.gatewayUrl}/async/bench-hello`, DURATION_S, ['-s', join(HERE, 'post.lua')]);
  const res = await fetch(`${n.gatewayUrl}/async/bench-hello`, { method: 'POST', body: 'marker' });
  const { id } = await res.json();
  for (;;) {
    const { invocation } = await n.admin(`/v1/invocations/${id}`);
    if (invocation.status === 'succeeded') break;
    if (invocation.status !== 'queued' && invocation.status !== 'running') throw new Error(`marker ended ${invocation.status}`);
    await sleep(20);
  }
  const seconds = (performance.now() - t0) / 1000;
  const accepted = r.requests - r.non2xx - r.errors;
  return { ...r, accepted, delivered: (accepted + 1) / seconds };
}

export async function run(_ctx, log) {
  const n = await nimbus();
  let r;
  try {
    r = await asyncEvents(n);
  } finally {
    await n.stop();
  }
  log(`async: ${f0(r.rps)} accepted/s, ${f0(r.delivered)} delivered/s`);
  return {
    lines: table(
      ['async events (`POST /async/bench-hello`)', 'per second', 'p50 ms', 'p99 ms', 'non-2xx', 'target'],
      [
        ['accepted (202 after the commit), while delivering', f0(r.rps), f1(r.p50), f1(r.p99), r.non2xx + r.errors, '≥ 5,000'],
        [`delivered end to end (${f0(r.accepted)} events)`, f0(r.delivered), '', '', '', ''],
      ],
    ),
    checks: [{ what: 'g: durable async enqueue ≥ 5,000 events/s', ok: r.rps >= 5_000, budget: true }],
  };
}
