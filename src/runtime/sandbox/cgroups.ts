/**
 * Limits on an instance's whole process tree with the cgroup v1 controllers (memory,
 * pids, cpu), where the platform may write them (root, as on this machine; a container
 * given its own cgroups). Each platform makes one group per controller under its own
 * (`nimbus-<pid>-<n>`), each instance one below that (`i<id>`): the kernel then holds the
 * function's memory (heap, child processes and its /tmp together), its number of
 * processes and threads, and its share of the CPU, whatever the code does.
 *
 * Where cgroups cannot be written (an ordinary user, cgroup v2 without delegation),
 * limits fall back to the platform's watchdog over the sandbox's processes and to
 * rlimits (docs/security.md says what that does not hold).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive } from '../../shared/processes.js';

const CONTROLLERS = ['memory', 'pids', 'cpu'] as const;
type Controller = (typeof CONTROLLERS)[number];
const CGROUP_ROOT = '/sys/fs/cgroup';
/** cpu.shares of an instance per MB of its memory: CPU in proportion to memory, as on Lambda. */
const CPU_SHARES_PER_MB = 1;
const MIN_CPU_SHARES = 2;

export interface InstanceLimits {
  memoryMB: number;
  pids: number;
}

/** The instance's own groups: limits, usage, and the out-of-memory kills it suffered. */
export interface InstanceCgroup {
  /** Files to write the sandbox's first process into, one per controller. */
  readonly procFiles: string[];
  setLimits(limits: InstanceLimits): void;
  /** Anonymous memory of the whole group (heap, buffers, child processes), in MB. */
  residentMB(): number;
  /** The processes in the group (host pids). */
  pids(): number[];
  /** SIGKILLs every process in the group: whatever the instance started, however it detached. */
  killAll(): void;
  /** The kernel killed a process of the group for want of memory. */
  oomKilled(): boolean;
  /** Removes the groups, which only works once every process in them is gone; true when they are. Idempotent. */
  remove(): boolean;
}

export class Cgroups {
  /** <root>/<controller>/<own path>/nimbus-<pid>, per controller. */
  readonly #parents: Record<Controller, string>;

  private constructor(parents: Record<Controller, string>) {
    this.#parents = parents;
  }

  /**
   * The platform's groups, or a reason why they cannot be had. Stale groups of a
   * platform that died are removed (a group can only be removed once empty, and the
   * kernel empties it when the sandboxes' processes die with their platform).
   */
  static open(): Cgroups | string {
    platformSeq++;
    const own = ownCgroupPaths();
    const parents = {} as Record<Controller, string>;
    for (const c of CONTROLLERS) {
      const base = own.get(c);
      if (base === undefined) return `the cgroup v1 ${c} controller is not mounted at ${CGROUP_ROOT}/${c}`;
      const dir = join(CGROUP_ROOT, c, base);
      if (!existsSync(join(dir, 'cgroup.procs'))) return `no cgroup v1 ${c} hierarchy at ${dir}`;
      removeStale(dir);
      const mine = join(dir, `nimbus-${process.pid}-${platformSeq}`);
      try {
        mkdirSync(mine, { recursive: true });
      } catch (err) {
        return `cannot create ${mine}: ${(err as Error).message}`;
      }
      parents[c] = mine;
    }
    return new Cgroups(parents);
  }

  /** Groups for one instance, with the limits it starts with. */
  create(id: number, limits: InstanceLimits): InstanceCgroup {
    const dirs = CONTROLLERS.map((c) => join(this.#parents[c], `i${id}`));
    for (const dir of dirs) mkdirSync(dir, { recursive: true });
    const [memory, pids, cpu] = dirs;
    const write = (dir: string, file: string, value: number | string) => writeFileSync(join(dir, file), String(value));
    const setLimits = (l: InstanceLimits) => {
      const bytes = l.memoryMB * 1_048_576;
      // Swap too, where it is accounted: a limit that spills into swap holds nothing.
      // memsw must stay >= the memory limit, so the order depends on the direction.
      const memsw = existsSync(join(memory, 'memory.memsw.limit_in_bytes'));
      const current = Number(readFileSync(join(memory, 'memory.limit_in_bytes'), 'latin1'));
      if (memsw && bytes > current) write(memory, 'memory.memsw.limit_in_bytes', bytes);
      write(memory, 'memory.limit_in_bytes', bytes);
      if (memsw) write(memory, 'memory.memsw.limit_in_bytes', bytes);
      write(pids, 'pids.max', l.pids);
      write(cpu, 'cpu.shares', Math.max(MIN_CPU_SHARES, Math.round(l.memoryMB * CPU_SHARES_PER_MB)));
    };
    setLimits(limits);
    return {
      procFiles: dirs.map((d) => join(d, 'cgroup.procs')),
      setLimits,
      // The group's own count of anonymous memory: pages a fork shares are counted once
      // (adding up each process's resident set counts them in every process).
      residentMB() {
        try {
          const m = /^total_rss (\d+)$/m.exec(readFileSync(join(memory, 'memory.stat'), 'latin1'));
          return m ? Number(m[1]) / 1_048_576 : 0;
        } catch {
          return 0;
        }
      },
      pids: () => readPids(memory),
      killAll: () => killPids(pids),
      oomKilled() {
        try {
          const m = /^oom_kill (\d+)$/m.exec(readFileSync(join(memory, 'memory.oom_control'), 'latin1'));
          return m !== null && Number(m[1]) > 0;
        } catch {
          return false;
        }
      },
      remove() {
        let all = true;
        for (const dir of dirs) all = rmdirQuiet(dir) && all;
        return all;
      },
    };
  }

  /**
   * Removes the platform's own groups (at stop, once every instance is gone), ending
   * first any process still in one: nothing a sandbox started outlives its platform.
   */
  close(): void {
    for (const c of CONTROLLERS) {
      const dir = this.#parents[c];
      for (const child of listDirs(dir)) {
        killPids(join(dir, child));
        rmdirQuiet(join(dir, child));
      }
      rmdirQuiet(dir);
    }
  }
}

/** Several platforms may run in one process (tests): each gets groups of its own. */
let platformSeq = 0;

/** Resident pages of a process, 0 once it is gone. */
export function residentPages(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ')[1]) || 0;
  } catch {
    return 0;
  }
}

/** This process's group in each v1 hierarchy, from /proc/self/cgroup ("4:memory:/a/b"). */
function ownCgroupPaths(): Map<string, string> {
  const out = new Map<string, string>();
  try {
    for (const line of readFileSync('/proc/self/cgroup', 'latin1').split('\n')) {
      const [, controllers, path] = line.split(':');
      if (!controllers || path === undefined) continue;
      for (const c of controllers.split(',')) out.set(c, path);
    }
  } catch {
    // not Linux
  }
  return out;
}

function readPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'latin1').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Passes over a group's processes, for ones forked while the last pass ran. */
const KILL_PASSES = 10;

function killPids(dir: string): void {
  for (let pass = 0; pass < KILL_PASSES; pass++) {
    const pids = readPids(dir);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

function listDirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return [];
  }
}

/** True when the folder is gone (now or before); false while it still has processes. */
function rmdirQuiet(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** Groups left by platforms that are no longer running. */
function removeStale(dir: string): void {
  for (const name of listDirs(dir)) {
    const m = /^nimbus-(\d+)(?:-\d+)?$/.exec(name);
    if (!m || Number(m[1]) === process.pid || isAlive(Number(m[1]))) continue;
    const stale = join(dir, name);
    for (const child of listDirs(stale)) {
      // A sandbox caught early in its start when its platform died can outlive it: end it now.
      killPids(join(stale, child));
      rmdirQuiet(join(stale, child));
    }
    rmdirQuiet(stale);
  }
}
