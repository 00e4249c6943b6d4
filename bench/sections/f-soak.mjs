// (f) DURATION_F seconds of open-loop load at LOAD_F × the capacity (a) measured for
// nimbus with process isolation: errors, achieved rate, latency, and whether the
// platform's memory stays flat.
import { CONNECTIONS, DURATION_F, LOAD_F, RATE_F, SAMPLE_F_S, WARMUP_S } from '../lib/knobs.mjs';
import { runLoad } from '../lib/load.mjs';
import { nimbus, wrk } from '../lib/peers.mjs';
import { mb, processTree } from '../lib/proc.mjs';
import { f0, f1, pct, sleep, table } from '../lib/stats.mjs';

export const title = `(f) ${DURATION_F} s at a fixed rate`;

/** Unrecorded seconds at the target rate before the measured window (JIT, pools, buffers). */
const WARM_S = 5;
/** Requests the generator lets wait for an answer before it counts new ones as never sent. */
const MAX_IN_FLIGHT = 20_000;
/** Seconds of flat-out load that measure the capacity with this generator (the first 2 unrecorded). */
const PROBE_S = 8;

export async function run(ctx, log) {
  const n = await nimbus();
  const url = `${n.gatewayUrl}/fn/bench-hello`;
  const memory = [];
  let result;
  let rate;
  let capacity;
  let capacitySource;
  try {
    if (RATE_F > 0) {
      rate = RATE_F;
      capacitySource = 'RATE_F';
    } else {
      capacity = ctx.capacity;
      capacitySource = 'section (a)';
      if (!capacity) {
        // Run on its own: measure the capacity now, on this platform, as (a) would.
        log(`no capacity from (a): measuring it with wrk for ${WARMUP_S} s`);
        wrk(url, WARMUP_S);
        capacity = wrk(url, WARMUP_S).rps;
        capacitySource = `wrk -c${CONNECTIONS} -d${WARMUP_S}s in this section`;
      }
      // wrk (C, closed loop) leaves the platform more of the 2 cores than our open-loop
      // generator (Node) does: measure what the platform answers with this generator
      // driving it flat out, and take 80% of the lower of the two.
      log(`probing the capacity with the open-loop generator for ${PROBE_S} s`);
      const probe = await runLoad({
        origin: n.gatewayUrl,
        connections: 64,
        timeoutMs: 10_000,
        recordAfterS: 2,
        maxInFlight: 512,
        streams: [{ id: 'probe', path: '/fn/bench-hello', segments: [[0, PROBE_S, Math.round(capacity * 1.5)]] }],
      });
      const ps = probe.streams[0];
      const probed = (ps.ok + ps.non2xx) / probe.recordedS;
      if (probed < capacity) {
        capacitySource = `${capacitySource}; ${f0(probed)} req/s answered with this generator flat out, used instead`;
        capacity = probed;
      }
      rate = Math.round(LOAD_F * capacity);
    }
    const sample = (label) => {
      const tree = processTree(n.pid);
      memory.push({ label, t: performance.now(), totalMB: mb(tree.rssBytes), rootMB: mb(tree.rootRssBytes), children: tree.children });
    };
    let timer;
    let started;
    const spec = {
      origin: n.gatewayUrl,
      connections: 64,
      timeoutMs: 10_000,
      recordAfterS: WARM_S,
      maxInFlight: MAX_IN_FLIGHT,
      streams: [{ id: 'bench-hello', path: '/fn/bench-hello', segments: [[0, WARM_S + DURATION_F, rate]] }],
    };
    log(`${f0(rate)} req/s for ${WARM_S} + ${DURATION_F} s…`);
    result = await runLoad(spec, {
      onStarted: () => {
        started = performance.now();
        // Start of the measured window, then every SAMPLE_F_S seconds within it.
        timer = setTimeout(function tick() {
          sample(`${f0((performance.now() - started) / 1000 - WARM_S)} s`);
          timer = setTimeout(tick, SAMPLE_F_S * 1000);
        }, WARM_S * 1000);
      },
    });
    clearTimeout(timer);
    sample('end of load');
    await sleep(2_000);
    sample('2 s after');
  } finally {
    await n.stop();
  }
  return report({ rate, capacity, capacitySource, result, memory });
}

/** What the failures were: HTTP statuses, socket error codes, unanswered. */
function breakdown(s, codes) {
  const parts = Object.entries(codes).map(([code, count]) => `${f0(count)} ${code}`);
  if (s.unanswered) parts.push(`${f0(s.unanswered)} unanswered at the end`);
  return parts.join(', ');
}

function report({ rate, capacity, capacitySource, result, memory }) {
  const s = result.streams[0];
  // Errors are answers that went wrong or never came; requests the generator could not
  // even send (the platform too far behind) count against the rate, not as errors.
  const failed = s.non2xx + s.errors + s.unanswered;
  const achieved = (s.ok + s.non2xx) / result.recordedS;
  const first = memory[0];
  const underLoad = memory.filter((m) => m.label !== '2 s after');
  const last = underLoad.at(-1);
  const growthMB = last.totalMB - first.totalMB;
  const growthPct = (100 * growthMB) / first.totalMB;
  const lines = [
    `Open-loop (undici, 64 connections; latency counted from each request's due time, so stalls are not hidden): ` +
      (capacity
        ? `${f0(rate)} req/s = ${Math.round(LOAD_F * 100)}% of ${f0(capacity)} req/s (capacity from ${capacitySource}), `
        : `${f0(rate)} req/s (RATE_F), `) +
      `${WARM_S} s unrecorded, then ${result.recordedS} s measured. Load generator: ${f1(result.cpuPercentOfCore)}% of a core, send lag p99 ${f1(result.lag.p99)} ms, max ${f1(result.lag.max)} ms.`,
    '',
    ...table(
      ['fixed-rate load, nimbus process isolation', 'value'],
      [
        ['target rate', `${f0(rate)} req/s`],
        ['achieved rate (answers / measured s)', `${f0(achieved)} req/s (${pct((100 * achieved) / rate)})`],
        ['requests sent / 2xx', `${f0(s.sent)} / ${f0(s.ok)}`],
        ['errors (non-2xx, socket errors, timeouts, unanswered)', failed === 0 ? '0' : `${f0(failed)}: ${breakdown(s, result.errorCodes)}`],
        ['never sent (platform too far behind)', s.dropped === 0 ? '0' : `${f0(s.dropped)} (${f0(MAX_IN_FLIGHT)} requests were already waiting)`],
        ['latency p50 / p99 / max', `${f1(s.latency.p50)} / ${f1(s.latency.p99)} / ${f1(s.latency.max)} ms`],
        ['platform RSS growth, start → end of load', `${growthMB >= 0 ? '+' : ''}${f1(growthMB)} MB (${growthPct >= 0 ? '+' : ''}${f1(growthPct)}%)`],
      ],
    ),
    '',
    ...table(
      ['t (measured window)', 'RSS platform total MB', 'RSS `nimbus up` MB', 'RSS children MB', 'child processes'],
      memory.map((m) => [m.label, f1(m.totalMB), f1(m.rootMB), f1(m.totalMB - m.rootMB), m.children]),
    ),
  ];
  return {
    lines,
    checks: [
      { what: 'f: 0 errors at the fixed rate', ok: failed === 0, detail: JSON.stringify(result.errorCodes) },
      {
        what: 'f: the platform keeps up with the rate (answers ≥ 98% of it, nothing left unsent)',
        ok: achieved >= 0.98 * rate && s.dropped === 0,
        detail: `${f0(achieved)} of ${f0(rate)} req/s, p50 latency ${f1(s.latency.p50)} ms`,
      },
      { what: 'f: memory flat (RSS growth ≤ 10% start → end)', ok: growthPct <= 10, detail: `${f1(growthMB)} MB, ${f1(growthPct)}%` },
    ],
  };
}
