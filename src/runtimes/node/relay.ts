/**
 * The instance's end of its connections to the platform: a TCP listener on 127.0.0.1
 * inside the sandbox (its own network namespace, so no other instance can reach it)
 * whose connections travel over the instance's channel as TUNNEL_* frames
 * (runtime/protocol/frames.ts). Bindings, Python functions and programs reach the
 * platform's state API at NIMBUS_STATE_URL through it, with no port on the host.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { FrameChannel } from '../../runtime/protocol/channel.js';
import { encodeFrame, FrameType, MAX_TUNNEL_CHUNK_BYTES, TUNNEL_STREAM_BIT } from '../../runtime/protocol/frames.js';

interface Tunnel {
  socket: Socket;
  /** The platform asked us to stop sending. */
  peerPaused: boolean;
}

export class Relay {
  readonly #channel: FrameChannel;
  readonly #tunnels = new Map<number, Tunnel>();
  #server: Server | undefined;
  #port: Promise<number> | undefined;
  #next = 1;

  constructor(channel: FrameChannel) {
    this.#channel = channel;
  }

  /** Starts listening (once); resolves with the port. */
  listen(): Promise<number> {
    this.#port ??= new Promise((resolve, reject) => {
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.#open(socket));
      this.#server = server;
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : 0);
      });
    });
    return this.#port;
  }

  /** A TUNNEL_* frame from the platform. */
  onFrame(type: number, stream: number, payload: Buffer): void {
    const t = this.#tunnels.get(stream);
    if (!t) return;
    switch (type) {
      case FrameType.TUNNEL_DATA:
        // Copy: the payload is a view into a buffer the decoder reuses.
        if (!t.socket.write(Buffer.from(payload))) {
          this.#send(FrameType.TUNNEL_PAUSE, stream);
          t.socket.once('drain', () => this.#send(FrameType.TUNNEL_RESUME, stream));
        }
        break;
      case FrameType.TUNNEL_END:
        t.socket.end();
        break;
      case FrameType.TUNNEL_PAUSE:
        t.peerPaused = true;
        t.socket.pause();
        break;
      case FrameType.TUNNEL_RESUME:
        t.peerPaused = false;
        t.socket.resume();
        break;
    }
  }

  #open(socket: Socket): void {
    const stream = (TUNNEL_STREAM_BIT | this.#next++) >>> 0;
    const t: Tunnel = { socket, peerPaused: false };
    this.#tunnels.set(stream, t);
    this.#send(FrameType.TUNNEL_OPEN, stream);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.#send(FrameType.TUNNEL_END, stream);
    };
    socket.on('data', (chunk: Buffer) => {
      for (let off = 0; off < chunk.length; off += MAX_TUNNEL_CHUNK_BYTES) {
        this.#channel.send(encodeFrame(FrameType.TUNNEL_DATA, stream, chunk.subarray(off, off + MAX_TUNNEL_CHUNK_BYTES)));
      }
      // The channel is full: read no more until it drains (and the platform has not paused us).
      if (this.#channel.needsDrain) {
        socket.pause();
        void this.#channel.drained().then(() => {
          if (!t.peerPaused) socket.resume();
        });
      }
    });
    socket.on('end', end);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      end();
      this.#tunnels.delete(stream);
    });
    socket.resume();
  }

  #send(type: (typeof FrameType)[keyof typeof FrameType], stream: number): void {
    this.#channel.send(encodeFrame(type, stream));
  }

  close(): void {
    this.#server?.close();
    for (const t of this.#tunnels.values()) t.socket.destroy();
  }
}
