// (d) FUNCTIONS_D deployed functions, all idle: what the platform costs at rest (memory,
// CPU, processes) and how long listing takes, against the same platform with none.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { DEPLOY_CONCURRENCY, FUNCTIONS_D, IDLE_S, LS_RUNS } from '../lib/knobs.mjs';
import { ENV, FUNCTIONS, NIMBUS, nimbus } from '../lib/peers.mjs';
import { cpuOver, mb, processTree, waitForSteadyChildren } from '../lib/proc.mjs';
import { f0, f1, sleep, summarize, table } from '../lib/stats.mjs';
import { zipFolder } from '../lib/zip.mjs';

export const title = `(d) ${FUNCTIONS_D.toLocaleString('en-US')} idle functions`;

function timeCli(args) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    execFile(process.execPath, [NIMBUS, ...args], { env: ENV, maxBuffer: 256 * 1024 * 1024 }, (err, stdout) => {
      if (err) reject(err);
      else resolve({ ms: performance.now() - t0, lines: stdout.split('\n').length - 1 });
    });
  });
}

async function timeList(n) {
  const t0 = performance.now();
  const res = await fetch(`${n.adminUrl}/v1/functions`, { headers: { authorization: `Bearer ${n.token}` } });
  const bytes = (await res.arrayBuffer()).byteLength;
  return { ms: performance.now() - t0, bytes };
}

/** Memory, processes, instances, idle CPU and list latencies of the platform as it is now. */
async function snapshot(n, log) {
  const { functions } = await n.admin('/v1/functions');
  const tree = processTree(n.pid);
  log(`idle CPU over ${IDLE_S} s with ${functions.length} functions…`);
  const cpu = await cpuOver(n.pid, IDLE_S);
  const cli = [];
  const api = [];
  let rows = 0;
  let bytes = 0;
  for (let i = 0; i < LS_RUNS; i++) {
    const c = await timeCli(['ls', ...n.cliArgs]);
    cli.push(c.ms);
    rows = c.lines - 1; // the header
    const a = await timeList(n);
    api.push(a.ms);
    bytes = a.bytes;
  }
  return {
    functions: functions.length,
    instances: functions.reduce((s, f) => s + f.instances.ready, 0),
    rootMB: mb(tree.rootRssBytes),
    childMB: mb(tree.rssBytes - tree.rootRssBytes),
    totalMB: mb(tree.rssBytes),
    children: tree.children,
    cpu,
    cli: summarize(cli),
    api: summarize(api),
    rows,
    bytes,
  };
}

/** Deploys idle-0001… through the admin API, DEPLOY_CONCURRENCY at a time. */
async function deployAll(n, log) {
  const bundle = zipFolder(join(FUNCTIONS, 'hello'), {});
  const names = Array.from({ length: FUNCTIONS_D }, (_, i) => `idle-${String(i + 1).padStart(4, '0')}`);
  const times = [];
  const failures = [];
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < names.length) {
      const name = names[next++];
      const t = performance.now();
      try {
        await n.putBundle(name, bundle);
        times.push(performance.now() - t);
      } catch (err) {
        failures.push(`${name}: ${err.message}`);
      }
      if ((times.length + failures.length) % 200 === 0) log(`deployed ${times.length + failures.length}/${names.length}`);
    }
  };
  await Promise.all(Array.from({ length: DEPLOY_CONCURRENCY }, worker));
  return { seconds: (performance.now() - t0) / 1000, ...summarize(times), failures };
}

export async function run(_ctx, log) {
  const n = await nimbus({ hello: false });
  let empty;
  let full;
  let deploys;
  try {
    await sleep(1_000); // the warm pool starts
    empty = await snapshot(n, log);
    deploys = await deployAll(n, log);
    log(`deploys: ${f1(deploys.seconds)} s, ${deploys.failures.length} failed`);
    // The deploy checks' instances exit; then let the platform settle before measuring.
    await waitForSteadyChildren(n.pid, 2_000, 30_000);
    await sleep(1_000);
    full = await snapshot(n, log);
  } finally {
    await n.stop();
  }
  const per = (a, b) => (full.functions > 0 ? `${f1(((b - a) * 1024) / full.functions)} KB` : '');
  const cpuCell = (s) => `${f0(s.cpu.ms)} ms (${s.cpu.percentOfCore.toFixed(2)}% of a core; \`nimbus up\` ${f0(s.cpu.rootMs)} ms)`;
  const lsCell = (s) => `${f0(s.cli.p50)} / ${f0(s.cli.max)}`;
  const apiCell = (s) => `${f1(s.api.p50)} / ${f1(s.api.max)} (${f0(s.bytes / 1024)} kB)`;
  const lines = [
    `Deployed ${f0(full.functions)} copies of the hello function through \`PUT /v1/functions/<name>\`, ${DEPLOY_CONCURRENCY} at a time: ` +
      `${f1(deploys.seconds)} s in all, ${f1(deploys.n / deploys.seconds)} deploys/s, per deploy p50 ${f0(deploys.p50)} ms, p99 ${f0(deploys.p99)} ms; ` +
      `${deploys.failures.length} failed${deploys.failures.length ? ` (first: ${deploys.failures[0]})` : ''}. ` +
      `Measured once the number of child processes had been steady for 2 s (+1 s). RSS from /proc/<pid>/stat; CPU = utime+stime of \`nimbus up\` and every descendant (reaped children included); ls p50 / max over ${LS_RUNS} runs.`,
    '',
    ...table(
      ['idle platform', '0 functions', `${f0(full.functions)} functions`, 'per function'],
      [
        ['RSS, `nimbus up` process (MB)', f1(empty.rootMB), f1(full.rootMB), per(empty.rootMB, full.rootMB)],
        ['RSS, its child processes (MB)', f1(empty.childMB), f1(full.childMB), ''],
        ['RSS, platform total (MB)', f1(empty.totalMB), f1(full.totalMB), ''],
        ['child processes (warm pool + instances)', empty.children, full.children, ''],
        ['instances (Σ `instances.ready`)', empty.instances, full.instances, ''],
        [`CPU over ${IDLE_S} s idle`, cpuCell(empty), cpuCell(full), ''],
        ['`nimbus ls` (CLI process, ms p50 / max)', lsCell(empty), lsCell(full), ''],
        ['`GET /v1/functions` (ms p50 / max, body)', apiCell(empty), apiCell(full), ''],
      ],
    ),
  ];
  return {
    lines,
    checks: [
      { what: `d: all ${FUNCTIONS_D} deploys succeed`, ok: deploys.failures.length === 0, detail: deploys.failures.slice(0, 3).join('; ') },
      { what: `d: \`nimbus ls\` lists every function (${full.rows} rows)`, ok: full.rows === full.functions },
      { what: `d: 0 instances once idle (Σ ready = ${full.instances})`, ok: full.instances === 0 },
      {
        what: 'd: no more child processes than the idle platform with no functions had',
        ok: full.children <= empty.children,
        detail: `${full.children} vs ${empty.children}: warm pool (pre-started, no function loaded) or instances that did not exit`,
        budget: true,
      },
      { what: 'd: idle CPU ≈ 0 (≤ 0.5% of a core)', ok: full.cpu.percentOfCore <= 0.5, detail: `${full.cpu.percentOfCore.toFixed(2)}%`, budget: true },
    ],
  };
}
