// (c) BURST simultaneous first requests to a function at zero instances: do all succeed,
// how long do they take, and how many cold starts does the platform make for them?
import { Agent, request } from 'node:http';
import { BURST, C_RUNS } from '../lib/knobs.mjs';
import { nimbus } from '../lib/peers.mjs';
import { processTree, waitForSteadyChildren } from '../lib/proc.mjs';
import { f1, sleep, summarize, table } from '../lib/stats.mjs';

export const title = `(c) ${BURST} simultaneous first requests at zero instances`;

const CONFIGS = [
  { label: 'scale.concurrency 100, max 10', name: 'burst-c100', scale: { concurrency: 100, max: 10 } },
  { label: 'defaults (concurrency 8, max 10)', name: 'burst-default', scale: {} },
];

function get(agent, url) {
  return new Promise((resolve) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve('error'));
    });
    req.on('error', (err) => resolve(err.code ?? 'error'));
    req.end();
  });
}

/** BURST keep-alive connections, opened beforehand so the burst itself sends only requests. */
async function openConnections(gatewayUrl) {
  const agent = new Agent({ keepAlive: true, maxSockets: BURST, maxFreeSockets: BURST });
  await Promise.all(Array.from({ length: BURST }, () => get(agent, `${gatewayUrl}/fn/bench-absent`)));
  return agent;
}

async function burst(n, config, i) {
  await n.deployZip(config.name, 'hello', { scale: config.scale, env: { RUN: String(i) } });
  // The previous version's instances drain and exit; the warm pool refills after the check.
  const before = await waitForSteadyChildren(n.pid);
  await sleep(200);
  const agent = await openConnections(n.gatewayUrl);
  const url = `${n.gatewayUrl}/fn/${config.name}`;
  const t0 = performance.now();
  const times = [];
  const statuses = await Promise.all(
    Array.from({ length: BURST }, () =>
      get(agent, url).then((status) => {
        times.push(performance.now() - t0);
        return status;
      }),
    ),
  );
  agent.destroy();
  const { function: f } = await n.admin(`/v1/functions/${config.name}`);
  const { children } = processTree(n.pid);
  const failed = statuses.filter((s) => s !== 200);
  // A build whose autoscaler aims below full concurrency (scale.utilization, %) may fairly start a few more.
  const perInstance = f.scale.concurrency * ((f.scale.utilization ?? 100) / 100);
  return {
    allowed: Math.min(f.scale.max, Math.ceil(BURST / perInstance)),
    ok: statuses.length - failed.length,
    failures: [...new Set(failed)].join(', '),
    ...summarize(times),
    coldStarts: f.instances.coldStarts,
    ready: f.instances.ready,
    processesBefore: before,
    processes: children,
  };
}

export async function run(_ctx, log) {
  const n = await nimbus({ hello: false });
  const rows = [];
  try {
    for (const config of CONFIGS) {
      const expected = Math.min(config.scale.max ?? 10, Math.ceil(BURST / (config.scale.concurrency ?? 8)));
      for (let i = 0; i < C_RUNS; i++) {
        const r = await burst(n, config, i);
        rows.push({ config, expected, run: i + 1, ...r });
        log(`${config.label} run ${i + 1}: ${r.ok}/${BURST} ok, max ${f1(r.max)} ms, ${r.coldStarts} cold starts`);
      }
    }
  } finally {
    await n.stop();
  }
  return {
    lines: [
      `${BURST} GETs sent at once over ${BURST} already-open keep-alive connections to a function just deployed (zero instances; waited until the number of child processes, i.e. the warm pool, was steady); latency from the burst's start. ` +
        `Cold starts and instances from \`GET /v1/functions/<name>\` (\`instances.coldStarts\`, \`instances.ready\`), child processes (warm pool + instances) from /proc before and right after the burst. ${C_RUNS} run(s) per setting.`,
      '',
      ...table(
        ['setting', 'run', 'succeeded', 'p50 ms', 'p99 ms', 'max ms', 'cold starts (fewest possible)', 'instances after', 'child processes before → after'],
        rows.map((r) => [
          r.config.label,
          r.run,
          `${r.ok}/${BURST}${r.failures ? ` (${r.failures})` : ''}`,
          f1(r.p50),
          f1(r.p99),
          f1(r.max),
          `${r.coldStarts} (${r.expected})`,
          r.ready,
          `${r.processesBefore} → ${r.processes}`,
        ]),
      ),
    ],
    checks: [
      { what: `c: all ${BURST} simultaneous first requests succeed, every run`, ok: rows.every((r) => r.ok === BURST) },
      {
        what: 'c: one coalesced scale-up (cold starts ≤ ⌈burst / (concurrency × utilization)⌉, capped by max)',
        ok: rows.every((r) => r.coldStarts <= r.allowed),
        detail: rows.map((r) => r.coldStarts).join(', '),
        budget: true,
      },
    ],
  };
}
