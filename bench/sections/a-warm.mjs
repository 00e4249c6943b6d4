// (a) Warm hello world: bare node:http, workerd, and nimbus with process and thread
// isolation, each with wrk (closed loop) after a discarded warm-up run.
import { CONNECTIONS, DURATION_S, WARMUP_S } from '../lib/knobs.mjs';
import { bareNode, DeployError, freePort, nimbus, stop, waitFor200, workerd, wrk } from '../lib/peers.mjs';
import { f0, f1, f2, pct, table } from '../lib/stats.mjs';

export const title = '(a) warm hello world';

function measure(url) {
  wrk(url, WARMUP_S); // warm-up, discarded
  return wrk(url, DURATION_S);
}

/** The thread-isolation function, or why there is none: a build whose manifest lacks `isolation`. */
async function deployThread(n) {
  try {
    await n.deploy('hello-thread');
  } catch (err) {
    if (err instanceof DeployError && err.code === 'NIMBUS_INVALID_MANIFEST' && /isolation/.test(err.detail)) return { unsupported: true };
    throw err;
  }
  const url = `${n.gatewayUrl}/fn/bench-hello-thread`;
  await waitFor200(url);
  return { url };
}

export async function run(ctx, log) {
  const rows = [];
  for (const [name, launch] of [
    ['bare node:http', async () => bareNode(await freePort())],
    ['workerd', async () => workerd(await freePort())],
  ]) {
    const peer = await launch();
    rows.push({ name, ...measure(peer.url) });
    log(`${name}: ${f0(rows.at(-1).rps)} req/s`);
    await stop(peer.child);
  }
  const n = await nimbus();
  try {
    rows.push({ name: 'nimbus, process isolation (gateway → process instance)', ...measure(`${n.gatewayUrl}/fn/bench-hello`) });
    log(`nimbus process: ${f0(rows.at(-1).rps)} req/s`);
    const thread = await deployThread(n);
    if (thread.unsupported) rows.push({ name: 'nimbus, thread isolation (`isolation: thread`)', unsupported: true });
    else rows.push({ name: 'nimbus, thread isolation (`isolation: thread`)', ...measure(thread.url) });
    log(`nimbus thread: ${thread.unsupported ? 'not supported by this build' : `${f0(rows.at(-1).rps)} req/s`}`);
  } finally {
    await n.stop();
  }
  const [bare, wd, proc, thread] = rows;
  ctx.capacity = proc.rps;
  const ratio = (a, b) => (a.unsupported ? 'n/a' : pct((100 * a.rps) / b.rps));
  const lines = [
    `wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s after a discarded ${WARMUP_S} s run; bench functions: scale.concurrency 64, max 1.`,
    '',
    ...table(
      ['hello world, warm', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'socket errors'],
      rows.map((r) =>
        r.unsupported ? [r.name, 'n/a (not supported by this build)', '', '', '', ''] : [r.name, f0(r.rps), f1(r.p50), f1(r.p99), r.non2xx, r.errors],
      ),
    ),
    '',
    ...table(
      ['ratio', 'value', 'target (ARCHITECTURE §8)'],
      [
        ['nimbus (process) / bare node:http, req/s', ratio(proc, bare), '≥ 50%'],
        ['nimbus (process) / workerd, req/s', `${f2(proc.rps / wd.rps)}×`, '≥ 1.5×'],
        ['nimbus (process) p99 / bare node:http p99', `${f1(proc.p99 / bare.p99)}×`, '≤ 2×'],
        ['nimbus (thread) / bare node:http, req/s', ratio(thread, bare), '≥ 80%'],
        ['nimbus (thread) / nimbus (process), req/s', ratio(thread, proc), ''],
      ],
    ),
  ];
  const checks = [
    { what: 'a: no non-2xx or socket errors under wrk', ok: rows.every((r) => r.unsupported || (r.non2xx === 0 && r.errors === 0)) },
    { what: 'a: nimbus process ≥ 50% of bare req/s', ok: proc.rps >= 0.5 * bare.rps, budget: true },
    { what: 'a: nimbus process ≥ 1.5× workerd req/s', ok: proc.rps >= 1.5 * wd.rps, budget: true },
    { what: 'a: nimbus process p99 ≤ 2× bare p99', ok: proc.p99 <= 2 * bare.p99, budget: true },
    thread.unsupported
      ? { what: 'a: thread isolation ≥ 80% of bare req/s', ok: undefined, detail: 'not supported by this build', budget: true }
      : { what: 'a: thread isolation ≥ 80% of bare req/s', ok: thread.rps >= 0.8 * bare.rps, budget: true },
  ];
  return { lines, checks };
}
