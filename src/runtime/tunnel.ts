/**
 * The platform's end of a connection an instance opened over its channel (TUNNEL_*
 * frames, frames.ts): a Duplex that the platform's state server takes as if it were a
 * socket. Writes become TUNNEL_DATA frames and wait while the channel is full or the
 * instance asked to pause, so a function that does not read what it asked for cannot
 * make the platform buffer it; data from the instance is pushed in, and when the
 * server is not reading, the instance is asked to pause.
 */
import { Duplex } from 'node:stream';
import type { FrameChannel } from './protocol/channel.js';
import { encodeFrame, FrameType, MAX_TUNNEL_CHUNK_BYTES } from './protocol/frames.js';

export class TunnelSocket extends Duplex {
  /** What node:http reads off a socket; the instance is, as far as the server is concerned, local. */
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 0;
  readonly #channel: FrameChannel;
  readonly #stream: number;
  /** The instance asked us to stop sending. */
  #peerPaused = false;
  /** We asked the instance to stop sending. */
  #askedPause = false;
  /** A write waiting for the channel to drain or the instance to resume. */
  #waiting: (() => void) | undefined;
  #ended = false;

  constructor(channel: FrameChannel, stream: number) {
    super({ allowHalfOpen: true });
    this.#channel = channel;
    this.#stream = stream;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    for (let off = 0; off < chunk.length; off += MAX_TUNNEL_CHUNK_BYTES) {
      this.#channel.send(encodeFrame(FrameType.TUNNEL_DATA, this.#stream, chunk.subarray(off, off + MAX_TUNNEL_CHUNK_BYTES)));
    }
    this.#waiting = () => done();
    this.#release();
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#sendEnd();
    done();
  }

  override _read(): void {
    if (this.#askedPause) {
      this.#askedPause = false;
      this.#channel.send(encodeFrame(FrameType.TUNNEL_RESUME, this.#stream));
    }
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.#sendEnd();
    this.#waiting = undefined;
    done(err);
  }

  // What node:http calls on a socket; a tunnel has no timers or Nagle of its own.
  setTimeout(): this {
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  /** TUNNEL_DATA from the instance. */
  receive(payload: Buffer): void {
    if (this.destroyed || this.readableEnded) return;
    // Copy: the payload is a view into a buffer the decoder may reuse.
    if (!this.push(Buffer.from(payload)) && !this.#askedPause) {
      this.#askedPause = true;
      this.#channel.send(encodeFrame(FrameType.TUNNEL_PAUSE, this.#stream));
    }
  }

  /** TUNNEL_END from the instance: it sends no more. */
  receiveEnd(): void {
    if (!this.destroyed) this.push(null);
  }

  /** The instance is gone: nothing more can be sent to it. */
  abort(): void {
    this.#ended = true;
    this.destroy();
  }

  peerPause(): void {
    this.#peerPaused = true;
  }

  peerResume(): void {
    this.#peerPaused = false;
    this.#release();
  }

  #release(): void {
    if (!this.#waiting || this.#peerPaused) return;
    if (this.#channel.needsDrain) {
      void this.#channel.drained().then(() => this.#release());
      return;
    }
    const done = this.#waiting;
    this.#waiting = undefined;
    done();
  }

  #sendEnd(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#channel.send(encodeFrame(FrameType.TUNNEL_END, this.#stream));
  }
}
