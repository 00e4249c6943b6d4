/**
 * An instance's network. Every sandbox has a network namespace of its own, with only
 * a loopback device: `network: none` stops there. Outbound access (the default) adds
 * slirp4netns, a user-mode TCP/IP stack that makes the sandbox's connections from the
 * host as ordinary sockets, with the host's loopback switched off
 * (--disable-host-loopback). Before slirp4netns gives the namespace a route out, the
 * namespace gets `prohibit` routes for every range a function must not reach: private
 * and link-local ranges (169.254.169.254, the cloud metadata service, among them), the
 * host's own addresses and the networks it sits on. A manifest's allow-list adds more
 * specific routes through the gateway. The function has no capabilities, so it cannot
 * change any of this.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { SANDBOX_NETWORK_TIMEOUT_MS } from '../../config/defaults.js';

/** IPv4 ranges no function reaches unless its manifest allow-lists them (RFC 6890 special-purpose blocks). */
export const BLOCKED_RANGES: readonly string[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/4',
  '240.0.0.0/4',
];

/** slirp4netns's defaults: the sandbox is 10.0.2.100, its gateway 10.0.2.2, its DNS forwarder 10.0.2.3. */
export const SLIRP_GATEWAY = '10.0.2.2';
export const SLIRP_DNS = '10.0.2.3';
/** The largest MTU slirp4netns takes: fewer, larger packets through the user-mode stack. */
const SLIRP_MTU = 65_520;

export interface NetworkTools {
  nsenter: string;
  ip: string;
  slirp4netns?: string;
}

/** The host's own IPv4 addresses and the networks they are on: a function reaches neither. */
export function hostRanges(): string[] {
  const out = new Set<string>();
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4' || a.internal) continue;
      out.add(`${a.address}/32`);
      if (a.cidr) out.add(networkOf(a.cidr));
    }
  }
  return [...out];
}

/** "192.0.2.7/24" → "192.0.2.0/24". */
function networkOf(cidr: string): string {
  const [addr, bits] = cidr.split('/');
  const n = Number(bits);
  const value = addr.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
  const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
  const net = (value & mask) >>> 0;
  return `${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join('.')}/${n}`;
}

/** Runs `ip -batch -` in the network namespace of `pid` (root only: nsenter joins it). */
export function ipBatch(tools: NetworkTools, pid: number, lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(tools.nsenter, [`--net=/proc/${pid}/ns/net`, '--', tools.ip, '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'], env: {} });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
    });
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`configuring the sandbox's routes failed (${code}): ${stderr.trim()}`))));
    child.stdin.end(`${lines.join('\n')}\n`);
  });
}

/** The routes every sandbox starts with, before it has any way out. */
export function prohibitRoutes(extra: string[]): string[] {
  return [...new Set([...BLOCKED_RANGES, ...extra])].map((range) => `route add prohibit ${range}`);
}

/** Routes that let an instance reach what its manifest allow-lists, through slirp4netns. */
export function allowRoutes(allow: readonly string[]): string[] {
  return allow.map((range) => `route replace ${range} via ${SLIRP_GATEWAY} dev tap0`);
}

/** slirp4netns serving one sandbox; stop() ends it, and the sandbox's way out with it. */
export interface Uplink {
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Attaches slirp4netns to the network namespace of `pid` and resolves once the
 * namespace has its interface and default route. slirp4netns runs in a sandbox of its
 * own (--enable-sandbox: a new mount namespace, capabilities dropped; --enable-seccomp),
 * since it parses every packet the function sends.
 */
export function attachUplink(tools: NetworkTools, pid: number): Promise<Uplink> {
  const slirp = tools.slirp4netns;
  if (!slirp) return Promise.reject(new Error('slirp4netns is not installed'));
  return new Promise((resolve, reject) => {
    const child = spawn(
      slirp,
      // --exit-fd: the other end is the platform's; if the platform dies, slirp4netns goes too.
      [
        '--configure',
        `--mtu=${SLIRP_MTU}`,
        '--disable-host-loopback',
        '--enable-sandbox',
        '--enable-seccomp',
        '--ready-fd=3',
        '--exit-fd=4',
        String(pid),
        'tap0',
      ],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], env: {} },
    );
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-2_000);
    });
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    const stop = async () => {
      child.kill('SIGKILL');
      await exited;
    };
    const timer = setTimeout(() => fail('did not come up in time'), SANDBOX_NETWORK_TIMEOUT_MS);
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`the sandbox's network (slirp4netns) ${why}${stderr ? `: ${stderr.trim()}` : ''}`));
    };
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    const onEarlyExit = (code: number | null, signal: string | null) => fail(`exited (${signal ?? `code ${code}`})`);
    child.once('exit', onEarlyExit);
    const ready = child.stdio[3] as NodeJS.ReadableStream;
    ready.once('data', () => {
      clearTimeout(timer);
      child.off('exit', onEarlyExit);
      resolve({ process: child, stop });
    });
  });
}
