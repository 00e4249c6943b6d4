// (e) Mixed load over 20 functions with different rates, some bursting then stopping:
// instance counts sampled every 500 ms during the load and until all are back at zero.
import { DURATION_E, IDLE_TIMEOUT_E_S } from '../lib/knobs.mjs';
import { runLoad } from '../lib/load.mjs';
import { nimbus } from '../lib/peers.mjs';
import { processTree } from '../lib/proc.mjs';
import { f0, f1, sleep, table } from '../lib/stats.mjs';

export const title = '(e) mixed load over 20 functions: scale up and down';

const SAMPLE_MS = 500;
const CONCURRENCY = 4;
const MAX = 10;
const D = DURATION_E;

/**
 * Profiles: [group, how many, request time (ms), segments [fromS, toS, req/s]]. A request
 * holding its slot for `ms` keeps rate × ms / 1000 in flight, so instances ≈ that / 4.
 * The ramp climbs in steps of one second; bursts start and stop while the rest go on.
 */
const rampSteps = Array.from({ length: Math.ceil(D) }, (_, i) => [i, Math.min(i + 1, D), Math.round((60 * (i + 0.5)) / D)]);
const PROFILES = [
  ['steady 10 req/s', 4, 100, [[0, D, 10]]],
  ['ramp 0→60 req/s', 2, 100, rampSteps],
  ['early burst 50 req/s', 3, 100, [[0.15 * D, 0.4 * D, 50]]],
  ['late burst 50 req/s', 3, 100, [[0.55 * D, 0.8 * D, 50]]],
  ['trickle 2 req/s', 4, 10, [[0, D, 2]]],
  ['short spike 100 req/s', 2, 50, [[0.3 * D, 0.35 * D, 100]]],
  ['sparse 1 req/s', 2, 10, [[0, D, 1]]],
];

function functionsFromProfiles() {
  const out = [];
  for (const [group, count, ms, segments] of PROFILES)
    for (let i = 0; i < count; i++) out.push({ name: `mix-${String(out.length).padStart(2, '0')}`, group, ms, segments });
  return out;
}

export async function run(_ctx, log) {
  const fns = functionsFromProfiles();
  const n = await nimbus({ hello: false });
  const samples = [];
  let result;
  let loadStart;
  let backAtZeroS;
  try {
    const manifest = { scale: { concurrency: CONCURRENCY, max: MAX, idleTimeout: `${IDLE_TIMEOUT_E_S}s` } };
    await Promise.all(fns.map((f) => n.deployZip(f.name, 'sleepy', manifest)));
    await sleep(1_000);
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const t = performance.now();
        const { functions } = await n.admin('/v1/functions');
        const ready = Object.fromEntries(functions.map((f) => [f.name, f.instances.ready]));
        samples.push({ t, ready, processes: processTree(n.pid).children, coldStarts: functions.reduce((s, f) => s + f.instances.coldStarts, 0) });
        await sleep(Math.max(0, SAMPLE_MS - (performance.now() - t)));
      }
    })();
    const spec = {
      origin: n.gatewayUrl,
      connections: 64,
      timeoutMs: 10_000,
      streams: fns.map((f) => ({ id: f.name, path: `/fn/${f.name}?ms=${f.ms}`, segments: f.segments })),
    };
    log(`mixed load for ${D} s…`);
    result = await runLoad(spec, { onStarted: () => (loadStart = performance.now()) });
    const loadEnd = performance.now();
    // Wait until every function is back at zero (idleTimeout after its last request), or give up.
    const deadline = loadEnd + (IDLE_TIMEOUT_E_S + 20) * 1000;
    for (;;) {
      const last = samples.at(-1);
      if (last && last.t > loadEnd && Object.values(last.ready).every((r) => r === 0)) {
        backAtZeroS = (last.t - loadStart) / 1000;
        break;
      }
      if (performance.now() > deadline) break;
      await sleep(SAMPLE_MS / 2);
    }
    await sleep(SAMPLE_MS * 2); // a couple more samples at zero
    sampling = false;
    await sampler;
  } finally {
    await n.stop();
  }
  return report(fns, samples, result, loadStart, backAtZeroS);
}

function report(fns, samples, result, loadStart, backAtZeroS) {
  const at = (s) => (s.t - loadStart) / 1000;
  const groups = [...new Set(fns.map((f) => f.group))];
  const groupSum = (s, g) => fns.filter((f) => f.group === g).reduce((sum, f) => sum + (s.ready[f.name] ?? 0), 0);
  const total = (s) => Object.values(s.ready).reduce((a, b) => a + b, 0);
  // One row per whole second: the sample nearest to it.
  const timeline = [];
  const lastS = Math.ceil(at(samples.at(-1)));
  for (let sec = 0; sec <= lastS; sec++) {
    const s = samples.reduce((best, x) => (Math.abs(at(x) - sec) < Math.abs(at(best) - sec) ? x : best));
    const offered = fns.reduce((sum, f) => sum + (f.segments.find(([a, b]) => sec >= a && sec < b)?.[2] ?? 0), 0);
    timeline.push([sec, f0(offered), total(s), ...groups.map((g) => groupSum(s, g)), s.processes]);
  }
  const byId = new Map(result.streams.map((s) => [s.id, s]));
  const perFunction = fns.map((f) => {
    const r = byId.get(f.name);
    const peak = Math.max(...samples.map((s) => s.ready[f.name] ?? 0));
    const lastLoadS = Math.max(...f.segments.map((seg) => seg[1]));
    const zero = samples.find((s) => at(s) >= lastLoadS && (s.ready[f.name] ?? 0) === 0);
    return { f, r, peak, zeroAfterS: zero ? at(zero) - lastLoadS : Number.NaN };
  });
  const sent = result.streams.reduce((s, r) => s + r.sent, 0);
  const failedOf = (r) => r.non2xx + r.errors + r.dropped + r.unanswered;
  const failed = result.streams.reduce((s, r) => s + failedOf(r), 0);
  const coldStarts = samples.at(-1).coldStarts;
  const loadEndS = Math.max(...fns.flatMap((f) => f.segments.map((seg) => seg[1])));
  const lines = [
    `20 functions (the sleepy function: answers after ?ms=), scale.concurrency ${CONCURRENCY}, max ${MAX}, idleTimeout ${IDLE_TIMEOUT_E_S} s; open-loop load for ${D} s; ` +
      `\`GET /v1/functions\` sampled every ${SAMPLE_MS} ms. ${f0(sent)} requests, ${failed} failed, p50 ${f1(result.latency.p50)} ms, p99 ${f1(result.latency.p99)} ms, ${coldStarts} cold starts in all. ` +
      (backAtZeroS !== undefined
        ? `All back at zero instances at t = ${f1(backAtZeroS)} s, ${f1(backAtZeroS - loadEndS)} s after the last request was due.`
        : `**Not all functions were back at zero ${IDLE_TIMEOUT_E_S + 20} s after the load.**`),
    '',
    ...table(['t s', 'offered req/s', 'instances', ...groups, 'child processes'], timeline),
    '',
    ...table(
      ['function', 'profile', 'request ms', 'sent', 'failed', 'p50 ms', 'p99 ms', 'peak instances', 'zero after last request'],
      perFunction.map(({ f, r, peak, zeroAfterS }) => [
        f.name,
        f.group,
        f.ms,
        r.sent,
        failedOf(r),
        f1(r.latency.p50),
        f1(r.latency.p99),
        peak,
        Number.isFinite(zeroAfterS) ? `${f1(zeroAfterS)} s` : 'never',
      ]),
    ),
  ];
  return {
    lines,
    checks: [
      { what: 'e: no failed requests under the mixed load', ok: failed === 0, detail: JSON.stringify(result.errorCodes) },
      { what: 'e: scaled up (some function had > 1 instance)', ok: perFunction.some((p) => p.peak > 1) },
      { what: `e: all back at zero within idleTimeout + 20 s`, ok: backAtZeroS !== undefined },
    ],
  };
}
