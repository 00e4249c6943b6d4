/**
 * The sandbox the platform runs every process instance in (docs/security.md), and the
 * probe at start that tells whether it can: bubblewrap installed and able to make its
 * namespaces here, as root (a uid of its own per instance, cgroups, slirp4netns for
 * outbound network) or as an ordinary user with unprivileged user namespaces.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SANDBOX_ROOTLESS_ID, SANDBOX_UID_BASE, SANDBOX_UID_RANGE } from '../../config/defaults.js';
import type { ChannelEvents } from '../protocol/channel.js';
import { bwrapArgs, identityFiles, runtimePrefix, type SandboxLayout } from './bwrap.js';
import { Cgroups } from './cgroups.js';
import { SLIRP_DNS } from './network.js';
import { type SandboxContext, type SandboxHost, type SandboxTools, startSandboxHost } from './sandbox-host.js';
import { seccompArch, seccompFilter } from './seccomp.js';

/** What the sandbox holds on this machine, for GET /v1/info, `nimbus ls` and the start banner. */
export interface SandboxInfo {
  /** bubblewrap: every process instance is sandboxed; none: instances run as plain processes (see reason). */
  kind: 'bubblewrap' | 'none';
  /** Why there is no sandbox, or what is weaker than it could be. */
  reason?: string;
  /** Each instance runs as a uid of its own (the platform is root), or as the one user a user namespace maps. */
  users: 'per-instance' | 'user-namespace' | 'platform';
  /** Limits on each instance's whole process tree (cgroup v1), or only per process (rlimits and the watchdog). */
  limits: 'cgroup' | 'rlimit';
  /**
   * How outbound network reaches an instance: slirp4netns from a network namespace of its
   * own; the host's network namespace, shared (an ordinary user's platform bound to
   * loopback: weaker, said so); or not at all (functions must set network: none).
   */
  network: 'slirp4netns' | 'host' | 'none';
  seccomp: boolean;
}

export interface SandboxOptions {
  /** A folder of the platform's own (under the data dir): static /etc files, the seccomp filter, each instance's folder. */
  stateDir: string;
  /** The compiled platform (dist/src): the Node shim and what it imports. */
  nodeShimDir: string;
  pythonShimDir: string;
  /** Executables the instances run (node, python3): each must be in view inside. */
  executables: string[];
  /**
   * Where instances cannot have a network namespace with a way out (the platform is not
   * root), whether outbound functions may share the host's instead (a platform bound to
   * loopback only, on a developer's own machine).
   */
  hostNetworkFallback: boolean;
}

export interface StartOptions {
  command: string[];
  memoryMB: number;
  tmpMB: number;
  pids: number;
  /** Share the host's network namespace (info.network 'host' only). */
  hostNetwork?: boolean;
}

export class Sandboxes {
  readonly info: SandboxInfo;
  readonly #ctx: SandboxContext;
  readonly #dir: string;
  #next = 1;

  private constructor(ctx: SandboxContext, dir: string, info: SandboxInfo) {
    this.#ctx = ctx;
    this.#dir = dir;
    this.info = info;
  }

  /** The sandbox, or the reason it cannot run here (the platform decides what that means). */
  static open(opts: SandboxOptions): Sandboxes | string {
    const arch = seccompArch();
    if (process.platform !== 'linux') return `sandboxes need Linux (this is ${process.platform})`;
    if (!arch) return `the seccomp filter is written for x64 and arm64, not ${process.arch}`;
    const bwrap = findTool('bwrap');
    if (!bwrap) return 'bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)';
    const prlimit = findTool('prlimit');
    if (!prlimit) return 'prlimit (util-linux) is not installed';
    const root = process.getuid?.() === 0;
    const setpriv = root ? findTool('setpriv') : undefined;
    if (root && !setpriv) return 'setpriv (util-linux) is not installed';
    const tools: SandboxTools = {
      bwrap,
      prlimit,
      setpriv,
      nsenter: findTool('nsenter') ?? '',
      ip: findTool('ip') ?? '',
      slirp4netns: findTool('slirp4netns'),
    };
    // Folders of instances a crash left behind go first: nothing else uses this folder (the data dir is locked).
    rmSync(opts.stateDir, { recursive: true, force: true });
    mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    const dir = opts.stateDir;
    const staticFiles = {
      hosts: join(dir, 'hosts'),
      'resolv.conf': join(dir, 'resolv.conf'),
      'nsswitch.conf': join(dir, 'nsswitch.conf'),
      'package.json': join(dir, 'package.json'),
    };
    writeFileSync(staticFiles.hosts, '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n', { mode: 0o644 });
    writeFileSync(staticFiles['resolv.conf'], `nameserver ${SLIRP_DNS}\noptions timeout:2 attempts:2\n`, { mode: 0o644 });
    writeFileSync(staticFiles['nsswitch.conf'], 'passwd: files\ngroup: files\nhosts: files dns\n', { mode: 0o644 });
    writeFileSync(staticFiles['package.json'], '{"type":"module"}\n', { mode: 0o644 });
    const seccompFile = join(dir, 'seccomp.bpf');
    writeFileSync(seccompFile, seccompFilter(arch), { mode: 0o644 });
    const layout: SandboxLayout = {
      nodeShimDir: opts.nodeShimDir,
      pythonShimDir: opts.pythonShimDir,
      staticFiles,
      extraRuntimeDirs: [...new Set(opts.executables.map(runtimePrefix).filter((d): d is string => d !== undefined))],
    };
    const cgroups = root ? Cgroups.open() : 'the platform is not root';
    const networkReady = root && tools.slirp4netns && tools.nsenter && tools.ip;
    const ctx: SandboxContext = { tools, layout, cgroups: typeof cgroups === 'string' ? undefined : cgroups, seccompFile };
    const problem = probe(ctx, dir);
    if (problem) {
      if (typeof cgroups !== 'string') cgroups.close();
      return problem;
    }
    const weaker: string[] = [];
    if (typeof cgroups === 'string') weaker.push(`limits hold per process only (${cgroups})`);
    const why = root ? 'slirp4netns, nsenter or ip is missing' : 'slirp4netns joins a sandbox only with root';
    const network = networkReady ? 'slirp4netns' : opts.hostNetworkFallback ? 'host' : 'none';
    if (network === 'host') weaker.push(`outbound functions share the host's network, its loopback included (${why})`);
    if (network === 'none') weaker.push(`no outbound network: functions must set network: none (${why})`);
    return new Sandboxes(ctx, dir, {
      kind: 'bubblewrap',
      ...(weaker.length > 0 ? { reason: weaker.join('; ') } : {}),
      users: root ? 'per-instance' : 'user-namespace',
      limits: typeof cgroups === 'string' ? 'rlimit' : 'cgroup',
      network,
      seccomp: true,
    });
  }

  /** Starts one sandboxed instance (the host Instance drives). */
  start(opts: StartOptions, events: ChannelEvents): SandboxHost {
    const id = this.#next++;
    const privileged = this.#ctx.tools.setpriv !== undefined;
    return startSandboxHost(
      this.#ctx,
      {
        id,
        dir: join(this.#dir, `i${id}`),
        command: opts.command,
        memoryMB: opts.memoryMB,
        tmpMB: opts.tmpMB,
        pids: opts.pids,
        outbound: this.info.network === 'slirp4netns',
        hostNetwork: this.info.network === 'host' && opts.hostNetwork === true,
        uid: privileged ? SANDBOX_UID_BASE + (id % SANDBOX_UID_RANGE) : SANDBOX_ROOTLESS_ID,
      },
      events,
    );
  }

  /** At platform stop, once every instance has exited. */
  close(): void {
    this.#ctx.cgroups?.close();
  }
}

const TOOL_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin'];

function findTool(name: string): string | undefined {
  for (const dir of TOOL_DIRS) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** Starts one sandbox that runs /bin/true, exactly as instances start: the reason it fails, if it does. */
function probe(ctx: SandboxContext, dir: string): string | undefined {
  const probeDir = join(dir, 'probe');
  mkdirSync(join(probeDir, 'code'), { recursive: true });
  const ids = identityFiles(SANDBOX_UID_BASE);
  writeFileSync(join(probeDir, 'passwd'), ids.passwd);
  writeFileSync(join(probeDir, 'group'), ids.group);
  const seccomp = openSync(ctx.seccompFile, 'r');
  try {
    const args = bwrapArgs(ctx.layout, {
      codeDir: join(probeDir, 'code'),
      passwdFile: join(probeDir, 'passwd'),
      groupFile: join(probeDir, 'group'),
      hostname: 'nimbus-probe',
      tmpMB: 1,
      user: ctx.tools.setpriv ? { kind: 'setpriv', setpriv: ctx.tools.setpriv, uid: SANDBOX_UID_BASE } : { kind: 'userns', uid: SANDBOX_ROOTLESS_ID },
      seccompFd: 3,
      infoFd: 4,
      hostNetwork: false,
      command: ['/bin/true'],
    });
    const result = spawnSync(ctx.tools.bwrap, args, { stdio: ['ignore', 'ignore', 'pipe', seccomp, 'pipe'], env: {}, timeout: PROBE_TIMEOUT_MS });
    if (result.error) return `bubblewrap could not run: ${result.error.message}`;
    if (result.status !== 0) {
      const said = result.stderr?.toString('utf8').trim();
      return `bubblewrap cannot create a sandbox here (exit ${result.status ?? result.signal})${said ? `: ${said}` : ''}`;
    }
    return undefined;
  } finally {
    closeSync(seccomp);
    rmSync(probeDir, { recursive: true, force: true });
  }
}

const PROBE_TIMEOUT_MS = 10_000;
