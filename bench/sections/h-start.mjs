// (h) Process start to first 200: each peer from a cold process (nimbus: `nimbus up`
// plus a deploy of the hello function through the CLI).
import { START_SAMPLES } from '../lib/knobs.mjs';
import { bareNode, freePort, nimbus, stop, workerd } from '../lib/peers.mjs';
import { f1, summarize, table } from '../lib/stats.mjs';

export const title = '(h) process start to first 200';

async function startToFirst200(launch) {
  const times = [];
  for (let i = 0; i < START_SAMPLES; i++) {
    const port = await freePort();
    const t0 = performance.now();
    const { child } = await launch(port);
    times.push(performance.now() - t0);
    await stop(child);
  }
  return summarize(times);
}

export async function run(_ctx, log) {
  const rows = [];
  for (const [name, launch] of [
    ['bare node:http', bareNode],
    ['workerd', workerd],
    ['nimbus up + deploy', () => nimbus()],
  ]) {
    rows.push([name, await startToFirst200(launch)]);
    log(`${name}: p50 ${f1(rows.at(-1)[1].p50)} ms`);
  }
  return {
    lines: [
      `${START_SAMPLES} samples per peer.`,
      '',
      ...table(
        ['process start to first 200', 'p50 ms', 'p99 ms', 'min ms', 'max ms'],
        rows.map(([name, t]) => [name, f1(t.p50), f1(t.p99), f1(t.min), f1(t.max)]),
      ),
    ],
    checks: [],
  };
}
