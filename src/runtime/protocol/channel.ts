/**
 * Where frames travel between the platform and an instance. The frames are the same
 * either way (frames.ts); only the carrier differs:
 *
 * - a Unix socket (the process instance's fd 3): frames written in one tick go out in
 *   one writev, and the socket's own buffer is the flow-control window;
 * - a MessagePort (a thread instance): frames written in one tick go out as one
 *   message, one ArrayBuffer transferred rather than copied, and a counter in shared
 *   memory stands in for the socket buffer, so a writer that outpaces its reader
 *   waits, as it would on a full socket.
 */
import type { Socket } from 'node:net';
import type { MessagePort } from 'node:worker_threads';
import { corkedWriter, FrameDecoder, type FrameHandler, HEADER_BYTES } from './frames.js';

export interface FrameChannel {
  /** Queues one encoded frame. The frame must not be touched afterwards (it may be transferred). */
  send(frame: Buffer): void;
  /** True while more has been sent than the other side has taken in: wait for drained(). */
  readonly needsDrain: boolean;
  drained(): Promise<void>;
}

export interface ChannelEvents {
  frame: FrameHandler;
  /** A frame that cannot be decoded: the peer is broken. */
  error(err: Error): void;
  /** The other side is gone. */
  close(): void;
}

/** The process instance's socket pair (fd 3 inside, stdio[3] outside). */
export function socketChannel(socket: Socket, events: ChannelEvents): FrameChannel {
  const decoder = new FrameDecoder(events.frame);
  socket.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk);
    } catch (err) {
      events.error(err as Error);
    }
  });
  socket.on('error', () => events.close());
  socket.on('close', () => events.close());
  const send = corkedWriter(socket);
  return {
    send,
    get needsDrain() {
      return socket.writableNeedDrain;
    },
    drained: () =>
      new Promise<void>((resolve) => {
        if (!socket.writableNeedDrain || socket.destroyed) resolve();
        else {
          const done = () => {
            socket.off('drain', done);
            socket.off('close', done);
            resolve();
          };
          socket.on('drain', done);
          socket.on('close', done);
        }
      }),
  };
}

/**
 * Bytes one side may have sent and the other not yet taken in before the sender
 * should wait: about what a Unix socket buffers.
 */
export const PORT_WINDOW_BYTES = 1024 * 1024;
const DRAIN_POLL_MS = 1_000;

/** Atomics.waitAsync (Node 16+; its types come with the ES2024 lib, newer than ours). */
const waitAsync = (Atomics as unknown as { waitAsync: AtomicsWaitAsync }).waitAsync;
type AtomicsWaitAsync = (
  array: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };

/** What a thread instance's worker gets: a port of its own for frames, and the shared window. */
export interface ThreadWorkerData {
  nimbus: { port: MessagePort; window: SharedArrayBuffer };
}

/** Sent on a thread instance's port instead of SIGTERM: finish in-flight work, then exit. */
export const STOP_MESSAGE = 'stop';

/** Slots of the shared Int32Array of a thread instance. */
export const WINDOW_SLOT = { toInstance: 0, toPlatform: 1, instanceMemoryKB: 2 } as const;
export const WINDOW_SLOTS = 3;

/**
 * A MessagePort carrying frames; `window` is shared with the other side. `side` says
 * which counter this side adds to when it sends (the other side subtracts what it takes in).
 */
export function portChannel(port: MessagePort, window: Int32Array, side: 'platform' | 'instance', events: ChannelEvents): FrameChannel {
  const out = side === 'platform' ? WINDOW_SLOT.toInstance : WINDOW_SLOT.toPlatform;
  const inbound = side === 'platform' ? WINDOW_SLOT.toPlatform : WINDOW_SLOT.toInstance;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let closed = false;
  const flush = () => {
    const frames = batch;
    const bytes = batchBytes;
    batch = [];
    batchBytes = 0;
    if (closed) return;
    Atomics.add(window, out, bytes);
    // One message of one ArrayBuffer we own, moved rather than copied: cloning a list
    // costs per element, and cloning a view clones all of its ArrayBuffer (for small
    // Buffers, Node's whole 8 KB pool slab).
    const only = frames.length === 1 ? frames[0] : undefined;
    const message = only && only.byteOffset === 0 && only.byteLength === only.buffer.byteLength ? only : Buffer.allocUnsafeSlow(bytes);
    if (message !== only) {
      let offset = 0;
      for (const frame of frames) {
        message.set(frame, offset);
        offset += frame.length;
      }
    }
    port.postMessage(message, [message.buffer as ArrayBuffer]);
  };
  port.on('message', (message: unknown) => {
    if (!(message instanceof Uint8Array)) return;
    const frames = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
    // Every message holds whole frames, back to back.
    for (let offset = 0; offset < frames.length; ) {
      const length = frames.length - offset >= HEADER_BYTES ? frames.readUInt32BE(offset) : 0;
      if (length < 5 || offset + 4 + length > frames.length) {
        events.error(new Error(`protocol error: frame length ${length} at byte ${offset} of a ${frames.length}-byte message`));
        return;
      }
      try {
        events.frame(frames.readUInt8(offset + 4), frames.readUInt32BE(offset + 5), frames.subarray(offset + HEADER_BYTES, offset + 4 + length));
      } catch (err) {
        // As on the socket: a frame that cannot be handled ends the channel (the instance), not the process.
        events.error(err as Error);
        return;
      }
      offset += 4 + length;
    }
    Atomics.sub(window, inbound, frames.length);
    Atomics.notify(window, inbound);
  });
  port.on('close', () => {
    closed = true;
    events.close();
  });
  return {
    send(frame) {
      if (batch.length === 0) process.nextTick(flush);
      batch.push(frame);
      batchBytes += frame.length;
    },
    get needsDrain() {
      return Atomics.load(window, out) + batchBytes > PORT_WINDOW_BYTES;
    },
    async drained() {
      for (;;) {
        if (closed) return;
        const inFlight = Atomics.load(window, out);
        if (inFlight + batchBytes <= PORT_WINDOW_BYTES) return;
        if (batchBytes > 0) {
          // Still ours to send: let this tick's flush run first.
          await new Promise((r) => process.nextTick(r));
          continue;
        }
        // Bounded, so a reader that went away cannot leave this waiting forever.
        const waited = waitAsync(window, out, inFlight, DRAIN_POLL_MS);
        if (waited.async) await waited.value;
      }
    },
  };
}
