/**
 * The shim's end of the channel to the platform. One shim serves both isolations:
 *
 * - process: the socket on fd 3; SIGTERM asks for a graceful stop; when the platform
 *   goes away the instance leaves and takes its process group (programs it started) along;
 * - thread: the MessagePort and shared window the platform put in workerData; a stop
 *   message stands in for SIGTERM; the worker reports its own heap and external memory
 *   into the window, since the process's resident set is the platform's.
 */
import { Socket } from 'node:net';
import { getHeapStatistics } from 'node:v8';
import { isMainThread, workerData } from 'node:worker_threads';
import { THREAD_MEMORY_REPORT_INTERVAL_MS } from '../../config/defaults.js';
import {
  type ChannelEvents,
  type FrameChannel,
  portChannel,
  STOP_MESSAGE,
  socketChannel,
  type ThreadWorkerData,
  WINDOW_SLOT,
} from '../../runtime/protocol/channel.js';
import { type FrameHandler, FrameType } from '../../runtime/protocol/frames.js';

export interface ShimLink {
  readonly isolation: 'process' | 'thread';
  readonly channel: FrameChannel;
  /** Calls back when the platform asks the instance to finish its work and exit. */
  onStop(handler: () => void): void;
}

/** Connects to the platform the way this shim was started. */
export function connect(onFrame: FrameHandler): ShimLink {
  const data = workerData as Partial<ThreadWorkerData> | null;
  return !isMainThread && data?.nimbus ? connectThread(data.nimbus, onFrame) : connectProcess(onFrame);
}

function connectProcess(onFrame: FrameHandler): ShimLink {
  // The platform closed our channel (or died, or sent garbage): nothing more will come,
  // so leave, and take along any program we started (runtime: process).
  const leave = (): never => {
    try {
      process.kill(-process.pid, 'SIGKILL');
    } catch {
      // not a group leader, or the group is already gone
    }
    process.exit(0);
  };
  const events: ChannelEvents = { frame: onFrame, error: leave, close: leave };
  const channel = socketChannel(new Socket({ fd: 3, readable: true, writable: true }), events);
  return { isolation: 'process', channel, onStop: (handler) => process.on('SIGTERM', handler) };
}

function connectThread(nimbus: ThreadWorkerData['nimbus'], onFrame: FrameHandler): ShimLink {
  const window = new Int32Array(nimbus.window);
  // Leaving ends this thread only: process.exit in a worker stops the worker.
  const leave = (): never => process.exit(0);
  const report = () => {
    const heap = getHeapStatistics();
    Atomics.store(window, WINDOW_SLOT.instanceMemoryKB, Math.round((heap.total_heap_size + heap.external_memory) / 1024));
  };
  report();
  // A pre-started generic worker has nothing to report: the timer starts with LOAD, so an idle pool costs no wakeups.
  let reporting = false;
  const frame: FrameHandler = (type, stream, payload) => {
    if (!reporting && type === FrameType.LOAD) {
      reporting = true;
      setInterval(report, THREAD_MEMORY_REPORT_INTERVAL_MS).unref();
    }
    onFrame(type, stream, payload);
  };
  const channel = portChannel(nimbus.port, window, 'instance', { frame, error: leave, close: leave });
  return {
    isolation: 'thread',
    channel,
    onStop: (handler) =>
      nimbus.port.on('message', (message: unknown) => {
        if (message === STOP_MESSAGE) handler();
      }),
  };
}
