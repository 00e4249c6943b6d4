/**
 * A host of the test's own on a private address: a network namespace joined to the
 * machine by a veth pair, with a TCP listener in it that answers "HELLO" and counts
 * connections. Sandboxed functions reach it (or are refused) through slirp4netns like
 * any private address, so egress rules are proved without a packet leaving the machine.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { after } from 'node:test';

export interface TestHost {
  /** The listener's address (in a private range) and port. */
  address: string;
  port: number;
  /** Connections the listener has accepted so far. */
  connections(): Promise<number>;
}

let seq = 0;

/** A listener that counts its connections: on CONTROL_PORT it answers the count instead. */
const SERVER = `
const net = require('node:net');
let count = 0;
net.createServer((c) => { count++; c.end('HELLO\\n'); }).listen(Number(process.argv[1]), '0.0.0.0');
net.createServer((c) => c.end(String(count))).listen(Number(process.argv[2]), '0.0.0.0', () => console.log('ready'));
`;
const PORT = 47_181;
const CONTROL_PORT = 47_182;

export async function startTestHost(): Promise<TestHost> {
  const n = ++seq;
  const ns = `nimbus-t${process.pid}-${n}`;
  const hostSide = `nt${process.pid % 10_000}h${n}`;
  const nsSide = `nt${process.pid % 10_000}n${n}`;
  // 10.213.<x>.0/30: a private range of the test's own, distinct per test host.
  const x = (process.pid + n) % 250;
  const [hostAddr, nsAddr] = [`10.213.${x}.1`, `10.213.${x}.2`];
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ip('netns', 'add', ns);
  after(() => {
    try {
      ip('link', 'del', hostSide);
    } catch {
      // gone with the namespace
    }
    ip('netns', 'del', ns);
  });
  ip('link', 'add', hostSide, 'type', 'veth', 'peer', 'name', nsSide);
  ip('link', 'set', nsSide, 'netns', ns);
  ip('addr', 'add', `${hostAddr}/30`, 'dev', hostSide);
  ip('link', 'set', hostSide, 'up');
  ip('-n', ns, 'addr', 'add', `${nsAddr}/30`, 'dev', nsSide);
  ip('-n', ns, 'link', 'set', nsSide, 'up');
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  const server: ChildProcess = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, String(PORT), String(CONTROL_PORT)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  after(() => {
    server.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    server.stdout?.once('data', () => resolve());
    server.once('exit', (code) => reject(new Error(`the test host's listener exited (${code})`)));
  });
  return {
    address: nsAddr,
    port: PORT,
    connections: async () => {
      const { connect } = await import('node:net');
      return new Promise((resolve, reject) => {
        let text = '';
        const socket = connect(CONTROL_PORT, nsAddr);
        socket.on('data', (d) => (text += d));
        socket.on('end', () => resolve(Number(text)));
        socket.on('error', reject);
      });
    },
  };
}
