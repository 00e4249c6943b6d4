/**
 * The framed protocol between the platform and an instance, over a Unix domain socket
 * (the instance's fd 3, a socketpair made by spawn). Each frame:
 *
 *   u32 length (bytes after this field) | u8 type | u32 stream id | payload
 *
 * Stream 0 is the control stream (READY, LOAD, LOADED, LOAD_ERROR); every invocation
 * gets its own stream id so several run at once on one instance. Bodies travel as
 * chunks (REQ_BODY / RES_BODY) and are never buffered whole on the platform side.
 * docs/runtime.md describes the full sequence.
 */
export const FrameType = {
  READY: 1,
  LOAD: 2,
  LOADED: 3,
  LOAD_ERROR: 4,
  REQ_HEAD: 10,
  REQ_BODY: 11,
  REQ_END: 12,
  CANCEL: 13,
  /** The client is not keeping up: stop sending this stream's body until RESUME. */
  PAUSE: 14,
  RESUME: 15,
  RES_HEAD: 20,
  RES_BODY: 21,
  RES_END: 22,
  RES_ERROR: 23,
  DONE: 24,
  /**
   * A connection the instance opened to the platform (its bindings' state API): the
   * instance relays a local TCP connection over its channel, so nothing it reaches is a
   * port on the host. Streams the instance opens have TUNNEL_STREAM_BIT set.
   */
  TUNNEL_OPEN: 30,
  TUNNEL_DATA: 31,
  /** The sender will send no more on this connection (a half close, as a socket's end()). */
  TUNNEL_END: 32,
  /** The receiver's side is not keeping up: stop sending data until TUNNEL_RESUME. */
  TUNNEL_PAUSE: 33,
  TUNNEL_RESUME: 34,
} as const;

/** Set on the ids of streams an instance opens (TUNNEL_OPEN), so they never collide with the platform's. */
export const TUNNEL_STREAM_BIT = 0x80000000;
/** Tunnel data travels in frames of at most this many bytes. */
export const MAX_TUNNEL_CHUNK_BYTES = 256 * 1024;
export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeValue = (typeof FrameType)[FrameTypeName];

export const HEADER_BYTES = 9;
/** A frame larger than this is a protocol error: body chunks are split well below it. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);

export function encodeFrame(type: FrameTypeValue, stream: number, payload: Buffer | Uint8Array = EMPTY): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  frame.writeUInt32BE(5 + payload.length, 0);
  frame.writeUInt8(type, 4);
  frame.writeUInt32BE(stream, 5);
  if (payload.length > 0) frame.set(payload, HEADER_BYTES);
  return frame;
}

export function encodeJsonFrame(type: FrameTypeValue, stream: number, value: unknown): Buffer {
  const json = JSON.stringify(value);
  const len = Buffer.byteLength(json);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + len);
  frame.writeUInt32BE(5 + len, 0);
  frame.writeUInt8(type, 4);
  frame.writeUInt32BE(stream, 5);
  frame.write(json, HEADER_BYTES);
  return frame;
}

export type FrameHandler = (type: number, stream: number, payload: Buffer) => void;

/** Incremental decoder: feed it socket chunks, it calls back once per whole frame. */
export class FrameDecoder {
  #pending: Buffer = EMPTY;
  readonly #onFrame: FrameHandler;

  constructor(onFrame: FrameHandler) {
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    let buf = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    let offset = 0;
    while (buf.length - offset >= 4) {
      const length = buf.readUInt32BE(offset);
      if (length < 5 || length > MAX_FRAME_BYTES) throw new Error(`protocol error: frame length ${length}`);
      if (buf.length - offset < 4 + length) break;
      const type = buf.readUInt8(offset + 4);
      const stream = buf.readUInt32BE(offset + 5);
      const payload = buf.subarray(offset + HEADER_BYTES, offset + 4 + length);
      offset += 4 + length;
      this.#onFrame(type, stream, payload);
    }
    if (offset === buf.length) this.#pending = EMPTY;
    else {
      // Copy the tail so a large socket chunk is not kept alive by a small remainder.
      buf = buf.subarray(offset);
      this.#pending = offset === 0 ? buf : Buffer.from(buf);
    }
  }
}

/** What the platform sends to specialise a generic shim into one function's instance. */
export interface LoadMessage {
  functionName: string;
  version: number;
  /** Absolute path of the unpacked bundle. */
  codeDir: string;
  /** Entry file relative to codeDir. */
  entry: string;
  /** Export to call, or undefined to detect the style from the module. */
  exportName?: string;
  /** The handler style from the manifest; undefined means detect it. */
  style?: string;
  /** Which shim code runs the function: node modules, or a program (runtime: process). */
  runtime?: 'node' | 'python' | 'process';
  /** runtime: process: the program to run (a string goes through /bin/sh). */
  command?: string | string[];
  /** The manifest's handler as written (the Lambda Runtime API passes it as _HANDLER). */
  handler?: string;
  /** Lambda style: API Gateway payload format of HTTP events. */
  payloadFormat?: '1.0' | '2.0';
  env: Record<string, string>;
  /** env.<NAME> bindings (KV, buckets, topics); the state endpoint's URL and token are in env. */
  bindings?: Record<string, { kv: string } | { bucket: string } | { topic: string }>;
  memoryMB: number;
  timeoutMs: number;
}

export interface LoadedMessage {
  style: string;
  /** Entry points besides HTTP the code has (Workers: scheduled, queue; Azure: http, timer). */
  handles?: string[];
  /** Schedules declared in code (Azure app.timer). */
  timers?: { name: string; schedule: string }[];
}

export interface LoadErrorMessage {
  code: string;
  message: string;
  stack?: string;
}

export interface RequestHead {
  requestId: string;
  method: string;
  /** Path and query as the function sees them (the /fn/<name> prefix removed). */
  path: string;
  /** Flat [name, value, name, value, ...] as node:http's rawHeaders. */
  headers: string[];
  /** Absolute deadline, ms since the epoch. */
  deadline: number;
  sourceIp: string;
  protocol: string;
  /**
   * A direct event (the Lambda Invoke API): the body is the event as JSON. Styles that
   * take events (Lambda, OpenWhisk, a Runtime API bootstrap) get it as it is and answer
   * with their result as JSON; the others see an ordinary POST.
   */
  event?: boolean;
  /**
   * A trigger's event for a style with a handler of its own (docs/events.md): Workers
   * scheduled() and queue(), Azure timer functions. The body is the trigger's JSON.
   */
  trigger?: 'scheduled' | 'queue' | 'timer';
}

export interface ResponseHead {
  status: number;
  headers: [string, string][];
}

export interface InvocationErrorMessage {
  code: string;
  message: string;
  errorType?: string;
  stack?: string;
}

/**
 * A frame writer that gathers every frame written in one tick into a single writev: a
 * response is usually head + body + end + done, and one syscall beats four. (Holding
 * frames to the end of the event loop's turn, to send many requests' frames in one
 * writev, measured fewer CPU µs per request but fewer requests per second: the
 * instance waits idle for the batch instead of working on the first request.)
 */
export function corkedWriter(socket: { cork(): void; uncork(): void; write(chunk: Buffer): boolean }): (frame: Buffer) => void {
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  return (frame) => {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    socket.write(frame);
  };
}
