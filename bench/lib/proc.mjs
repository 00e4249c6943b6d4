// The platform as the kernel sees it: a process tree read from /proc (Linux only).
// Memory is resident set size; CPU is user+system time in clock ticks, turned into ms.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const conf = (name, fallback) => {
  try {
    return Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim()) || fallback;
  } catch {
    return fallback;
  }
};
const TICKS_PER_S = conf('CLK_TCK', 100);
const PAGE_BYTES = conf('PAGESIZE', 4096);

/** One /proc/<pid>/stat line; comm may hold spaces and parentheses, so split after the last ')'. */
function readStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone between readdir and read
  }
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  // Fields from 3 (state) on; stat(5) numbers them from 1, so field n is rest[n - 3].
  const rest = text.slice(close + 2).split(' ');
  const n = (field) => Number(rest[field - 3]);
  return { pid, comm, ppid: n(4), ticks: n(14) + n(15) + n(16) + n(17), rssBytes: n(24) * PAGE_BYTES };
}

function allProcesses() {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) out.push(s);
  }
  return out;
}

function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

/**
 * The root and every live descendant. CPU counts each process's own time plus that of
 * its reaped children (cutime/cstime), so a child that exits during a window still
 * counts: its time moves into its parent's total.
 */
export function processTree(rootPid) {
  const procs = allProcesses();
  const byParent = new Map();
  for (const p of procs) {
    if (!byParent.has(p.ppid)) byParent.set(p.ppid, []);
    byParent.get(p.ppid).push(p);
  }
  const root = procs.find((p) => p.pid === rootPid);
  if (!root) throw new Error(`process ${rootPid} is not running`);
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(byParent.get(tree[i].pid) ?? []));
  const descendants = tree.slice(1);
  return {
    rootRssBytes: root.rssBytes,
    rssBytes: tree.reduce((s, p) => s + p.rssBytes, 0),
    cpuMs: (tree.reduce((s, p) => s + p.ticks, 0) * 1000) / TICKS_PER_S,
    rootCpuMs: (root.ticks * 1000) / TICKS_PER_S,
    children: descendants.length,
    python: descendants.filter((p) => /python/.test(p.comm)).length,
    describe: () => descendants.map((p) => `${p.pid} ${cmdline(p.pid).slice(0, 120)}`),
  };
}

/** CPU used by the tree over `seconds` of wall time: ms and percent of one core. */
export async function cpuOver(rootPid, seconds) {
  const a = processTree(rootPid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = processTree(rootPid);
  const wallMs = performance.now() - t0;
  const ms = b.cpuMs - a.cpuMs;
  // The root's own share (its reaped children's time included, which is small when idle).
  const rootMs = b.rootCpuMs - a.rootCpuMs;
  return { ms, rootMs, percentOfCore: (100 * ms) / wallMs, wallMs, before: a, after: b };
}

/**
 * Waits until the number of descendants has not changed for `stableMs` (instances of a
 * replaced version exiting, the warm pool refilling), or `timeoutMs` passed. Returns it.
 */
export async function waitForSteadyChildren(rootPid, stableMs = 600, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last = processTree(rootPid).children;
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const { children } = processTree(rootPid);
    if (children !== last) {
      last = children;
      since = Date.now();
    } else if (Date.now() - since >= stableMs) return children;
    if (Date.now() > deadline) return children;
  }
}

export const mb = (bytes) => bytes / 1_048_576;
