import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { INSTANCE_START_ENV } from '../../config/defaults.js';
import { type ChannelEvents, socketChannel } from '../protocol/channel.js';
import type { HostExit, InstanceHost } from './host.js';

const PAGE_BYTES = 4096;

/**
 * Spawns a program as an instance: a minimal environment, working folder /, its own
 * process group (so stopping it also stops whatever it started: runtime: process runs
 * the function's program as a child of the shim), frames on fd 3.
 */
export function spawnProcessHost(command: string, args: string[], events: ChannelEvents): InstanceHost {
  const proc = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env: { ...INSTANCE_START_ENV },
    cwd: '/',
    detached: true,
  });
  const channel = socketChannel(proc.stdio[3] as Socket, events);
  /** Signals the whole process group; ESRCH (already gone) is fine. */
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      if (proc.pid !== undefined) process.kill(-proc.pid, signal);
      else proc.kill(signal);
    } catch {
      // the group has already exited
    }
  };
  let spawnError: string | undefined;
  const exit = new Promise<HostExit>((resolve) => {
    proc.once('exit', (code, signal) => {
      // Whatever the instance started goes with it.
      signalGroup('SIGKILL');
      resolve({ code, signal, outOfMemory: false, error: spawnError });
    });
    // A process that could not be spawned at all never emits 'exit': give it one.
    proc.once('error', (err) => {
      spawnError = `spawn failed: ${err.message}`;
      if (proc.pid === undefined) proc.emit('exit', null, null);
    });
  });
  return {
    isolation: 'process',
    pid: proc.pid,
    channel,
    stdout: proc.stdout,
    stderr: proc.stderr,
    exit,
    stop: () => proc.kill('SIGTERM'),
    kill: () => signalGroup('SIGKILL'),
    memoryMB() {
      try {
        const statm = readFileSync(`/proc/${proc.pid}/statm`, 'latin1');
        return (Number(statm.split(' ')[1]) * PAGE_BYTES) / 1_048_576;
      } catch {
        return 0;
      }
    },
  };
}
