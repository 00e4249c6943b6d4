/**
 * One instance in a bubblewrap sandbox: the InstanceHost (hosts/host.ts) of every
 * process instance, whatever its runtime (node, python, process).
 *
 * Lifecycle, as the code goes:
 *   1. prepare   the instance's folder (code/, passwd, group) and cgroups
 *   2. spawn     /bin/sh joins the cgroups, prlimit sets rlimits, bubblewrap builds the
 *                view (bwrap.ts), starts its init as PID 1 of the new namespaces, loads
 *                the seccomp filter and starts the shim under its own uid, frames on fd 3
 *   3. network   once the program says READY: prohibit routes, then slirp4netns
 *                for outbound access
 *   4. specialise  the function's bundle linked into code/ (read-only at /var/task),
 *                its limits, its network policy: then LOAD
 *   5. exit      the shim exits or is killed: init exits, the kernel ends every process
 *                in the namespace; slirp4netns stops, cgroups and the folder are removed
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, copyFileSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { INSTANCE_START_ENV, SANDBOX_OPEN_FILES } from '../../config/defaults.js';
import type { HostExit, InstanceHost } from '../hosts/host.js';
import { type ChannelEvents, socketChannel } from '../protocol/channel.js';
import { bwrapArgs, identityFiles, type SandboxLayout, type SandboxSpec } from './bwrap.js';
import { type Cgroups, type InstanceCgroup, residentPages } from './cgroups.js';
import type { SandboxGrant } from './grant.js';
import { allowRoutes, attachUplink, hostRanges, ipBatch, type NetworkTools, prohibitRoutes, type Uplink } from './network.js';

/** What the platform found it can do (sandbox.ts probes it once at start). */
export interface SandboxTools extends NetworkTools {
  bwrap: string;
  /** util-linux's prlimit: sets the rlimits the sandbox starts with. */
  prlimit: string;
  /** Set when the platform runs as root: instances drop to a uid of their own with setpriv. */
  setpriv?: string;
}

export interface SandboxStart {
  id: number;
  /** The instance's folder on the host (created here, removed at exit). */
  dir: string;
  command: string[];
  memoryMB: number;
  tmpMB: number;
  pids: number;
  /** Outbound network from the start (the default policy), so a first request does not wait for it. */
  outbound: boolean;
  /** No network namespace of its own: the host's, shared (security.md#where-there-is-no-sandbox). */
  hostNetwork: boolean;
  uid: number;
}

export interface SandboxContext {
  tools: SandboxTools;
  layout: SandboxLayout;
  cgroups: Cgroups | undefined;
  /** The compiled seccomp filter on disk, opened for each sandbox. */
  seccompFile: string;
}

export interface SandboxHost extends InstanceHost {
  /** 3: sets up the sandbox's network once its program runs; resolves when done (rejects if it cannot be). */
  prepare(): Promise<void>;
  /** 4: gives the instance its function's code, limits and network; resolves with the code's path inside. */
  specialize(grant: SandboxGrant): Promise<string>;
}

const SECCOMP_FD = 4;
const INFO_FD = 5;

export function startSandboxHost(ctx: SandboxContext, start: SandboxStart, events: ChannelEvents): SandboxHost {
  // 1. prepare
  const codeDir = join(start.dir, 'code');
  mkdirSync(codeDir, { recursive: true, mode: 0o755 });
  const ids = identityFiles(start.uid);
  writeFileSync(join(start.dir, 'passwd'), ids.passwd, { mode: 0o644 });
  writeFileSync(join(start.dir, 'group'), ids.group, { mode: 0o644 });
  const cgroup = ctx.cgroups?.create(start.id, { memoryMB: start.memoryMB, pids: start.pids });
  const privileged = ctx.tools.setpriv !== undefined;
  const spec: SandboxSpec = {
    codeDir,
    passwdFile: join(start.dir, 'passwd'),
    groupFile: join(start.dir, 'group'),
    hostname: `nimbus-${start.id}`,
    tmpMB: start.tmpMB,
    user: privileged ? { kind: 'setpriv', setpriv: ctx.tools.setpriv as string, uid: start.uid } : { kind: 'userns', uid: start.uid },
    seccompFd: SECCOMP_FD,
    infoFd: INFO_FD,
    hostNetwork: start.hostNetwork,
    command: start.command,
  };
  // 2. spawn: the shell puts itself (and so everything it execs) in the cgroups first;
  // prlimit sets the rlimits bubblewrap and the sandbox inherit (and cannot raise).
  const limits = [`--nofile=${SANDBOX_OPEN_FILES}`, '--core=0'];
  // Per-uid process limit: each instance has its own uid only when the platform is root.
  if (privileged) limits.push(`--nproc=${start.pids}`);
  const script = [...(cgroup?.procFiles ?? []).map((f) => `echo $$ > ${f}`), 'exec "$@"'].join(' && ');
  const seccomp = openSync(ctx.seccompFile, 'r');
  let proc: ChildProcess;
  try {
    proc = spawn('/bin/sh', ['-c', script, 'nimbus-sandbox', ctx.tools.prlimit, ...limits, '--', ctx.tools.bwrap, ...bwrapArgs(ctx.layout, spec)], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', seccomp, 'pipe'],
      env: { ...INSTANCE_START_ENV },
      cwd: '/',
      detached: true,
    });
  } finally {
    closeSync(seccomp);
  }
  const channel = socketChannel(proc.stdio[3] as Socket, events);
  let sandboxPid: number | undefined;
  let uplink: Uplink | undefined;
  let exited = false;
  const sandboxPidKnown = readInfo((proc.stdio as unknown as Readable[])[INFO_FD]).then((pid) => {
    sandboxPid = pid;
    return pid;
  });
  // A sandbox stopped before it started reports no pid: its exit says why, to whoever waits.
  sandboxPidKnown.catch(() => {});

  // 3. network: once the program runs (READY), so that bubblewrap has finished setting up
  // the namespace's loopback: configuring routes while it does makes its netlink calls fail.
  let prepared: Promise<void> | undefined;
  const prepare = () => {
    prepared ??= sandboxPidKnown.then(async (pid) => {
      if (!start.outbound || !privileged || start.hostNetwork) return;
      await ipBatch(ctx.tools, pid, prohibitRoutes(hostRanges()));
      if (exited) return;
      uplink = await attachUplink(ctx.tools, pid);
      if (exited) await uplink.stop();
    });
    return prepared;
  };

  const killAll = () => {
    // Init (PID 1) takes the namespace with it; the group ends bubblewrap's monitor; the
    // cgroup holds anything else, even a process caught early in the sandbox's start.
    if (sandboxPid !== undefined) signal(sandboxPid, 'SIGKILL');
    if (proc.pid !== undefined) signal(-proc.pid, 'SIGKILL');
    cgroup?.killAll();
  };
  /** The shim: the one child of the sandbox's init. */
  const shimPid = (): number | undefined => (sandboxPid === undefined ? undefined : childrenOf(sandboxPid)[0]);
  let spawnError: string | undefined;
  const exit = new Promise<HostExit>((resolve) => {
    proc.once('exit', (code, sig) => {
      exited = true;
      // Init is gone, so the kernel is ending the rest of the namespace; make sure.
      killAll();
      const outOfMemory = cgroup?.oomKilled() ?? false;
      void uplink?.stop();
      cleanUp(cgroup, start.dir);
      resolve({ code, signal: sig, outOfMemory, error: spawnError });
    });
    proc.once('error', (err) => {
      spawnError = `spawn failed: ${err.message}`;
      if (proc.pid === undefined) proc.emit('exit', null, null);
    });
  });

  return {
    isolation: 'process',
    get pid() {
      return sandboxPid;
    },
    channel,
    stdout: proc.stdout,
    stderr: proc.stderr,
    exit,
    prepare,
    // The shim takes SIGTERM (it has a handler) and finishes its work; init follows it out.
    stop: () => {
      const shim = shimPid();
      if (shim !== undefined) signal(shim, 'SIGTERM');
      else killAll();
    },
    kill: killAll,
    memoryMB() {
      if (cgroup) return cgroup.residentMB();
      return sandboxPid === undefined ? 0 : (treeResidentPages(sandboxPid) * 4096) / 1_048_576;
    },
    async specialize(grant) {
      linkTree(grant.bundleDir, codeDir);
      cgroup?.setLimits({ memoryMB: grant.memoryMB, pids: grant.pids });
      await prepare();
      if (!grant.network.outbound) {
        // The way out goes with slirp4netns: its tap device disappears when it exits.
        await uplink?.stop();
        uplink = undefined;
      } else if (grant.network.allow.length > 0 && sandboxPid !== undefined && privileged) {
        await ipBatch(ctx.tools, sandboxPid, allowRoutes(grant.network.allow));
      }
      return '/var/task';
    },
  };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** bubblewrap's --info-fd: one JSON object with the sandbox's first process ("child-pid"), as the host sees it. */
function readInfo(stream: Readable): Promise<number> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      try {
        const info = JSON.parse(text) as { 'child-pid'?: number };
        if (typeof info['child-pid'] === 'number') {
          stream.off('data', onData);
          stream.resume();
          resolve(info['child-pid']);
        }
      } catch {
        // not all of it yet
      }
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error('the sandbox did not start (bubblewrap reported no process)')));
    stream.once('error', reject);
  });
}

/**
 * Gives the sandbox its bundle: hard links (the bundle store and the instance folders
 * are on one filesystem, so this costs a link per file, not a copy), copies where not.
 * The bundle is read-only inside, so the shared inodes cannot be changed from there.
 */
function linkTree(from: string, to: string): void {
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const src = join(from, entry.name);
    const dest = join(to, entry.name);
    if (entry.isDirectory()) {
      mkdirSync(dest, { mode: 0o755 });
      linkTree(src, dest);
    } else if (entry.isFile()) {
      try {
        linkSync(src, dest);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        copyFileSync(src, dest);
      }
    }
  }
}

/** Resident pages of a process and all its descendants. */
function treeResidentPages(pid: number): number {
  let pages = residentPages(pid);
  for (const child of childrenOf(pid)) pages += treeResidentPages(child);
  return pages;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'latin1');
        for (const c of text.split(' ')) if (c.trim()) out.push(Number(c));
      } catch {
        // the task ended
      }
    }
  } catch {
    // the process ended
  }
  return out;
}

/** The cgroups empty once the kernel has reaped the namespace's processes: try now, then a little later. */
function cleanUp(cgroup: InstanceCgroup | undefined, dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  if (!cgroup) return;
  let tries = 0;
  const attempt = () => {
    if (!cgroup.remove() && ++tries < CGROUP_REMOVE_TRIES) setTimeout(attempt, CGROUP_RETRY_MS).unref();
  };
  attempt();
}

const CGROUP_RETRY_MS = 100;
const CGROUP_REMOVE_TRIES = 20;
