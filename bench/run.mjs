// One run, one report: Nimbus against bare node:http and workerd, measured side by side
// on this machine. Ratios matter; absolute numbers drift on a shared machine.
//   cd bench && npm install && npm run bench          every section (about 7 minutes)
//   ONLY=c,d FUNCTIONS_D=100 npm run bench            some sections, smaller (README.md)
// The report goes to stdout and bench/results/latest.md; progress goes to stderr.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { KNOBS, ONLY } from './lib/knobs.mjs';
import { HERE } from './lib/peers.mjs';
import { table } from './lib/stats.mjs';

/** (f) right after (a): it loads the platform at a share of the capacity (a) just measured. */
const RUN_ORDER = ['a', 'f', 'b', 'c', 'd', 'e', 'g', 'h'];
const SECTIONS = {
  a: './sections/a-warm.mjs',
  b: './sections/b-cold.mjs',
  c: './sections/c-burst.mjs',
  d: './sections/d-idle.mjs',
  e: './sections/e-mixed.mjs',
  f: './sections/f-soak.mjs',
  g: './sections/g-async.mjs',
  h: './sections/h-start.mjs',
};

function commit() {
  if (process.env.NIMBUS_BIN) return `(NIMBUS_BIN=${process.env.NIMBUS_BIN})`;
  try {
    const git = (...args) => execFileSync('git', ['-C', HERE, ...args], { encoding: 'utf8' }).trim();
    return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--', '../src').length > 0 ? ' + uncommitted changes in src/' : ''}`;
  } catch {
    return 'unknown';
  }
}

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

/** A check's verdict: functional checks FAIL, performance targets are only missed. */
function verdict(c) {
  if (c.ok === undefined) return `n/a${c.detail ? ` (${c.detail})` : ''}`;
  if (c.ok) return 'pass';
  return `${c.budget ? 'miss' : '**FAIL**'}${c.detail ? ` (${c.detail})` : ''}`;
}

async function main() {
  const started = performance.now();
  const loadBefore = load();
  const ctx = {};
  const crashed = [];
  const parts = {};
  const checks = {};
  for (const id of RUN_ORDER.filter((s) => ONLY.includes(s))) {
    const section = await import(SECTIONS[id]);
    const t0 = performance.now();
    console.error(`== ${section.title}`);
    parts[id] = [`## ${section.title}`, ''];
    try {
      const { lines, checks: found } = await section.run(ctx, (msg) => console.error(`[${id}] ${msg}`));
      parts[id].push(...lines, '');
      checks[id] = found;
    } catch (err) {
      crashed.push(id);
      parts[id].push(`**The section failed:** ${String(err.message ?? err).split('\n')[0]}`, '');
      console.error(err);
    }
    console.error(`[${id}] done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  // Reported in section order, whatever order they ran in.
  const allChecks = ONLY.flatMap((id) => checks[id] ?? []);
  const minutes = (performance.now() - started) / 60_000;
  const knobs = Object.entries(KNOBS)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const report = [
    '# Nimbus benchmark',
    '',
    `Run ${new Date().toISOString()}, Node ${process.version}, commit ${commit()}, sections ${ONLY.join(', ')}, ${minutes.toFixed(1)} min. ` +
      `Load average before ${loadBefore}, after ${load()} (the machine is shared: compare ratios within one run).`,
    '',
    `Settings: ${knobs}`,
    '',
    ...ONLY.flatMap((id) => parts[id]),
    '## Checks and budget (ARCHITECTURE.md §8)',
    '',
    ...table(['check', 'result'], [...allChecks.map((c) => [c.what, verdict(c)]), ...crashed.map((id) => [`section ${id} ran to the end`, '**FAIL**'])]),
    '',
    '"miss" is a performance target not met; **FAIL** is something that must hold (every request answered, nothing left running).',
  ].join('\n');
  console.log(report);
  mkdirSync(join(HERE, 'results'), { recursive: true });
  writeFileSync(join(HERE, 'results', 'latest.md'), `${report}\n`);
  return crashed.length === 0 && allChecks.every((c) => c.ok !== false || c.budget) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
