// (b) Time from zero instances to the first response, JavaScript and Python.
import { SAMPLES } from '../lib/knobs.mjs';
import { nimbus } from '../lib/peers.mjs';
import { f1, sleep, summarize, table } from '../lib/stats.mjs';

export const title = '(b) from zero to first response';

// Deployed as zips through the admin API (faster than the CLI, same bundle). The Python
// handler is named: the API looks only for index.py, unlike `nimbus deploy`.
const FUNCTIONS = [
  ['JavaScript', 'bench-hello', 'hello', { scale: { concurrency: 64, max: 1 } }],
  ['Python', 'bench-hello-py', 'hello-py', { runtime: 'python', style: 'openfaas', handler: 'handler.py' }],
];

/**
 * Each deploy with a new env is a new version at zero instances (the deploy's load
 * check stops its instance), so the next request is a cold start.
 */
async function coldStarts(n, name, fn, manifest) {
  const times = [];
  for (let i = 0; i < SAMPLES; i++) {
    await n.deployZip(name, fn, { ...manifest, env: { RUN: String(i) } });
    // Let the warm pool refill after the deploy's check, as it would between real deploys.
    await sleep(400);
    const t0 = performance.now();
    const res = await fetch(`${n.gatewayUrl}/fn/${name}`);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`cold start ${i} of ${name}: HTTP ${res.status}`);
    times.push(performance.now() - t0);
  }
  return summarize(times);
}

export async function run(_ctx, log) {
  const n = await nimbus({ hello: false });
  const rows = [];
  try {
    for (const [lang, name, fn, manifest] of FUNCTIONS) {
      rows.push({ lang, ...(await coldStarts(n, name, fn, manifest)) });
      log(`${lang}: p50 ${f1(rows.at(-1).p50)} ms`);
    }
  } finally {
    await n.stop();
  }
  const [js, py] = rows;
  return {
    lines: [
      `${SAMPLES} samples per language: deploy a new version (zero instances), wait 400 ms for the warm pool to refill, time one GET.`,
      '',
      ...table(
        ['first response at zero instances', 'p50 ms', 'p99 ms', 'min ms', 'max ms', 'target'],
        rows.map((r) => [r.lang, f1(r.p50), f1(r.p99), f1(r.min), f1(r.max), r.lang === 'Python' ? 'p50 ≤ 20' : 'p50 ≤ 5, p99 ≤ 25']),
      ),
    ],
    checks: [
      { what: 'b: JavaScript from zero p50 ≤ 5 ms', ok: js.p50 <= 5, budget: true },
      { what: 'b: JavaScript from zero p99 ≤ 25 ms', ok: js.p99 <= 25, budget: true },
      { what: 'b: Python from zero p50 ≤ 20 ms', ok: py.p50 <= 20, budget: true },
    ],
  };
}
