/**
 * The filesystem view and namespaces of one sandbox, as bubblewrap arguments.
 *
 * Inside, an instance sees:
 *   /usr (and /bin, /lib, ... as the host has them)  read-only: the runtimes and system libraries
 *   <node's own prefix>, when node lives outside /usr read-only
 *   /opt/nimbus/node     read-only: the compiled shim (dist/src)
 *   /opt/nimbus/python   read-only: the Python shim
 *   /var/task            read-only: its own bundle (filled when it is specialised)
 *   /tmp                 a private tmpfs of `tmp` MB
 *   /etc                 passwd and group naming only its own user, hosts, hostname,
 *                        resolv.conf, and what programs need to run (ld.so.cache, CA certificates)
 *   /proc                its own PID namespace's processes only
 *   /dev                 null, zero, full, random, urandom, tty, shm, pts
 * and nothing of the data dir, other bundles, the admin token or the host's home.
 */
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import { dirname } from 'node:path';

/** Where things are inside every sandbox. */
export const SANDBOX_PATHS = {
  code: '/var/task',
  nodeShimRoot: '/opt/nimbus/node',
  pythonShimRoot: '/opt/nimbus/python',
  /** {"type":"module"}: the compiled shim is ES modules, and its own package.json is not in view. */
  packageJson: '/opt/nimbus/package.json',
  tmp: '/tmp',
} as const;

/** Top-level folders that hold programs and libraries: bound read-only, or recreated as the symlinks they are (merged /usr). */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** /etc files programs need to run, bound read-only when the host has them. */
const ETC_FILES = [
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/ssl',
  '/etc/ca-certificates',
  '/etc/pki',
  '/etc/alternatives',
  '/etc/mime.types',
  '/etc/localtime',
];

export interface SandboxLayout {
  /** The compiled platform (dist/src), for the Node shim. */
  nodeShimDir: string;
  /** src/runtimes/python. */
  pythonShimDir: string;
  /** Files written once per platform (hosts, resolv.conf, nsswitch.conf, package.json), by name. */
  staticFiles: Record<'hosts' | 'resolv.conf' | 'nsswitch.conf' | 'package.json', string>;
  /** Host folders to bind read-only at the same path (a Node or Python installed outside /usr). */
  extraRuntimeDirs: string[];
}

export interface SandboxSpec {
  /** The instance's own folder on the host: code/ (bound at /var/task), passwd, group. */
  codeDir: string;
  passwdFile: string;
  groupFile: string;
  hostname: string;
  tmpMB: number;
  /** Root: the host uid to drop to (setpriv); otherwise the uid seen inside a user namespace. */
  user: { kind: 'setpriv'; setpriv: string; uid: number } | { kind: 'userns'; uid: number };
  /** File descriptors (as the child sees them) bubblewrap reads the seccomp filter from and writes its info to. */
  seccompFd: number;
  infoFd: number;
  /** Keep the host's network namespace (the weaker fallback of an ordinary user's platform on loopback). */
  hostNetwork: boolean;
  /** The program and its arguments, with paths as the sandbox sees them. */
  command: string[];
}

/** The directory holding a program installed outside /usr (e.g. /opt/node/bin/node → /opt/node), or undefined. */
export function runtimePrefix(executable: string): string | undefined {
  if (executable.startsWith('/usr/') || executable.startsWith('/bin/')) return undefined;
  return dirname(dirname(executable));
}

export function bwrapArgs(layout: SandboxLayout, spec: SandboxSpec): string[] {
  const args: string[] = [
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    ...(spec.hostNetwork ? [] : ['--unshare-net']),
    '--unshare-cgroup-try',
    '--hostname',
    spec.hostname,
    // bubblewrap's own init is PID 1: it keeps --die-with-parent's death signal (the
    // program's is cleared when setpriv changes its uid), and when the program exits, init
    // exits and the kernel ends every process left in the namespace (no setsid escape).
    '--die-with-parent',
    '--new-session',
  ];
  if (spec.user.kind === 'userns') {
    args.push('--unshare-user', '--uid', String(spec.user.uid), '--gid', String(spec.user.uid), '--disable-userns');
  }
  for (const dir of SYSTEM_DIRS) {
    if (!existsSync(dir)) continue;
    const st = lstatSync(dir);
    if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(dir), dir);
    else args.push('--ro-bind', dir, dir);
  }
  for (const dir of layout.extraRuntimeDirs) args.push('--ro-bind', dir, dir);
  args.push('--perms', '0755', '--dir', '/etc');
  for (const file of ETC_FILES) {
    if (!existsSync(file)) continue;
    // A symlink stays one (/etc/localtime → zoneinfo/...): time zone code reads the link's
    // name, and without it scans every zoneinfo file for one that matches.
    if (lstatSync(file).isSymbolicLink()) args.push('--symlink', readlinkSync(file), file);
    else args.push('--ro-bind', file, file);
  }
  args.push(
    '--ro-bind',
    spec.passwdFile,
    '/etc/passwd',
    '--ro-bind',
    spec.groupFile,
    '/etc/group',
    '--ro-bind',
    layout.staticFiles.hosts,
    '/etc/hosts',
    '--ro-bind',
    layout.staticFiles['resolv.conf'],
    '/etc/resolv.conf',
    '--ro-bind',
    layout.staticFiles['nsswitch.conf'],
    '/etc/nsswitch.conf',
    '--perms',
    '0755',
    '--dir',
    '/opt/nimbus',
    '--ro-bind',
    layout.nodeShimDir,
    SANDBOX_PATHS.nodeShimRoot,
    '--ro-bind',
    layout.pythonShimDir,
    SANDBOX_PATHS.pythonShimRoot,
    '--ro-bind',
    layout.staticFiles['package.json'],
    SANDBOX_PATHS.packageJson,
    '--perms',
    '0755',
    '--dir',
    '/var',
    '--ro-bind',
    spec.codeDir,
    SANDBOX_PATHS.code,
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--perms',
    '1777',
    '--size',
    String(spec.tmpMB * 1_048_576),
    '--tmpfs',
    SANDBOX_PATHS.tmp,
    '--chdir',
    SANDBOX_PATHS.code,
    '--seccomp',
    String(spec.seccompFd),
    '--info-fd',
    String(spec.infoFd),
    '--',
  );
  if (spec.user.kind === 'setpriv') {
    const id = String(spec.user.uid);
    // bubblewrap ran as root to build the view; from here on: an unprivileged uid, no capabilities, none to gain.
    args.push(spec.user.setpriv, `--reuid=${id}`, `--regid=${id}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--');
  }
  args.push(...spec.command);
  return args;
}

/** /etc/passwd and /etc/group of a sandbox: root, the function's own user, nobody. */
export function identityFiles(uid: number): { passwd: string; group: string } {
  return {
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\nfunction:x:${uid}:${uid}:function:/tmp:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    group: `root:x:0:\nfunction:x:${uid}:\nnogroup:x:65534:\n`,
  };
}
