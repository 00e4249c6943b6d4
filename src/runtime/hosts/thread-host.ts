import { MessageChannel, Worker } from 'node:worker_threads';
import { INSTANCE_START_ENV } from '../../config/defaults.js';
import { type ChannelEvents, portChannel, STOP_MESSAGE, type ThreadWorkerData, WINDOW_SLOT, WINDOW_SLOTS } from '../protocol/channel.js';
import type { HostExit, InstanceHost } from './host.js';

export interface ThreadHostOptions {
  /** The compiled shim, run as the worker's main module. */
  shim: string;
  /** V8 heap limits of the worker (Worker resourceLimits). */
  resourceLimits: { maxOldGenerationSizeMb: number; maxYoungGenerationSizeMb: number; stackSizeMb: number };
}

/**
 * Starts the shim in a worker thread of the platform's process: a fresh V8 isolate with
 * its own heap limits, globals, module cache and process.env, but the platform's
 * address space, file system view and pid. Frames go over a MessagePort of its own
 * (parentPort stays free for the function), stdout and stderr come back as streams.
 */
export function startThreadHost(opts: ThreadHostOptions, events: ChannelEvents): InstanceHost {
  const { port1, port2 } = new MessageChannel();
  const window = new Int32Array(new SharedArrayBuffer(WINDOW_SLOTS * Int32Array.BYTES_PER_ELEMENT));
  const workerData: ThreadWorkerData = { nimbus: { port: port2, window: window.buffer as SharedArrayBuffer } };
  const worker = new Worker(opts.shim, {
    // Its own copy of the same minimal environment a process instance starts with:
    // none of the platform's variables (NODE_OPTIONS, NODE_EXTRA_CA_CERTS, secrets).
    env: { ...INSTANCE_START_ENV },
    argv: [],
    execArgv: [],
    stdin: false,
    stdout: true,
    stderr: true,
    resourceLimits: opts.resourceLimits,
    workerData,
    transferList: [port2],
  });
  const channel = portChannel(port1, window, 'platform', events);
  let outOfMemory = false;
  let error: string | undefined;
  // Without a listener an 'error' would be thrown in the platform: the worker's fault stays the worker's.
  worker.on('error', (err: Error & { code?: string }) => {
    if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') outOfMemory = true;
    error = `${err.name}: ${err.message}`;
  });
  const exit = new Promise<HostExit>((resolve) => {
    worker.once('exit', (code) => {
      port1.close();
      resolve({ code, signal: null, outOfMemory, error });
    });
  });
  return {
    isolation: 'thread',
    pid: process.pid,
    channel,
    stdout: worker.stdout,
    stderr: worker.stderr,
    exit,
    stop: () => port1.postMessage(STOP_MESSAGE),
    kill: () => {
      worker.terminate().catch(() => {});
    },
    memoryMB: () => Atomics.load(window, WINDOW_SLOT.instanceMemoryKB) / 1024,
  };
}
