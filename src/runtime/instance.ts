/**
 * One instance: a runtime shim in an OS process or in a worker thread (its host,
 * hosts/host.ts), reached over the framed protocol.
 *
 * Lifecycle (numbered as the code goes):
 *   1. spawn      the generic shim, with a minimal env and the memory limit
 *   2. ready      wait for READY, racing an early exit and a start timeout
 *   3. load       LOAD(bundle, handler, env) → LOADED | LOAD_ERROR (racing exit)
 *   4. serve      REQ_* streams in, RES_* streams out, several at once
 *   5. dispose    stop (SIGTERM, or a stop message to a thread), a grace period for
 *                 in-flight work, then kill (SIGKILL, or worker.terminate()); awaits the exit
 * kill(reason) jumps to the end at once (timeouts, memory). dispose() is idempotent.
 */
import { INSTANCE_START_TIMEOUT_MS, INSTANCE_STOP_GRACE_MS, PROCESS_READY_TIMEOUT_MS } from '../config/defaults.js';
import { isErrorCode, NimbusError } from '../shared/errors.js';
import type { HostExit, InstanceHost, Isolation } from './hosts/host.js';
import { LogCapture, type LogLine } from './log-capture.js';
import type { ChannelEvents } from './protocol/channel.js';
import type { InvocationErrorMessage, LoadErrorMessage, LoadedMessage, LoadMessage, RequestHead, ResponseHead } from './protocol/frames.js';
import { encodeFrame, encodeJsonFrame, FrameType, TUNNEL_STREAM_BIT } from './protocol/frames.js';
import type { SandboxGrant } from './sandbox/grant.js';
import { TunnelSocket } from './tunnel.js';

export type InstanceState = 'starting' | 'generic' | 'loading' | 'ready' | 'draining' | 'stopping' | 'exited';
export type KillReason = 'timeout' | 'memory' | 'shutdown';

/** Receives one invocation's response as it streams back. */
export interface InvocationSink {
  head(head: ResponseHead): void;
  body(chunk: Buffer): void;
  end(): void;
  error(err: NimbusError): void;
}

export type { LogLine } from './log-capture.js';

export interface InstanceOptions {
  /** Starts what the instance runs in (a process or a thread), wired to the instance's frame handlers. */
  host(events: ChannelEvents): InstanceHost;
  memoryMB: number;
  onLog(instance: Instance, log: LogLine): void;
  /** A connection the instance opened to the platform (its bindings' state API); without this, such connections are refused. */
  onTunnel?(instance: Instance, socket: TunnelSocket): void;
}

/** Connections one instance may hold open to the platform at once. */
const MAX_TUNNELS_PER_INSTANCE = 64;

let nextInstanceId = 1;

export class Instance {
  readonly id = nextInstanceId++;
  readonly memoryMB: number;
  state: InstanceState = 'starting';
  /** Slots taken: set by the pool on acquire, freed on DONE or exit. */
  busy = 0;
  lastActive = Date.now();
  style = '';
  /** What the instance reported when its function loaded. */
  loaded: LoadedMessage | undefined;
  /** The function version this instance was specialised for. */
  owner: { name: string; version: number } | undefined;
  killReason: KillReason | undefined;
  /** Called when a slot frees up or the instance exits. */
  onSlotFree: (instance: Instance) => void = () => {};
  onExit: (instance: Instance) => void = () => {};

  readonly #host: InstanceHost;
  readonly #send: (frame: Buffer) => void;
  /** Invocations in flight: where the response goes, and the request id its log lines carry. */
  readonly #streams = new Map<number, { sink: InvocationSink; responded: boolean; requestId: string }>();
  readonly #exited: Promise<void>;
  /** How the host ended, once it has. */
  #exit: HostExit | undefined;
  #nextStream = 1;
  readonly #tunnels = new Map<number, TunnelSocket>();
  readonly #logs: LogCapture;
  readonly #onTunnel: InstanceOptions['onTunnel'];
  #control: { resolve(payload: Buffer, type: number): void } | undefined;

  private constructor(opts: InstanceOptions) {
    this.memoryMB = opts.memoryMB;
    this.#onTunnel = opts.onTunnel;
    // 1. spawn
    this.#host = opts.host({
      frame: (type, stream, payload) => this.#onFrame(type, stream, payload),
      // A peer that sends what cannot be decoded is broken: stop it.
      error: () => this.kill('shutdown'),
      // The host's exit, not its channel closing, ends the instance.
      close: () => {},
    });
    const channel = this.#host.channel;
    this.#send = (frame) => channel.send(frame);
    this.#logs = new LogCapture((log) => opts.onLog(this, log));
    this.#logs.attach('stdout', this.#host.stdout);
    this.#logs.attach('stderr', this.#host.stderr);
    this.#exited = this.#host.exit.then((exit) => {
      this.#exit = exit;
      if (exit.error) this.#logs.lastStderr ||= exit.error;
      this.#onHostExit(exit);
    });
  }

  /** The OS process the instance runs in: for a thread instance, the platform's own. */
  get pid(): number | undefined {
    return this.#host.pid;
  }

  get isolation(): Isolation {
    return this.#host.isolation;
  }

  get hasResponsesPending(): boolean {
    for (const s of this.#streams.values()) if (!s.responded) return true;
    return false;
  }

  /** 1-2: starts a generic shim and resolves once it says READY. */
  static async start(opts: InstanceOptions): Promise<Instance> {
    const instance = new Instance(opts);
    try {
      await instance.#awaitControl(FrameType.READY, INSTANCE_START_TIMEOUT_MS, 'start');
      if (instance.#host.prepare) await instance.#raceExit(instance.#host.prepare(), 'start');
    } catch (err) {
      await instance.dispose();
      throw err;
    }
    instance.state = 'generic';
    return instance;
  }

  /** Resolves when the process or thread has exited. */
  get exited(): Promise<void> {
    return this.#exited;
  }

  /** True when the instance runs in a sandbox, which must be specialised (3a) before LOAD. */
  get sandboxed(): boolean {
    return this.#host.specialize !== undefined;
  }

  /** 3a: gives a sandboxed instance its function's code, limits and network; resolves with the code's path inside. */
  async specialize(grant: SandboxGrant): Promise<string> {
    if (!this.#host.specialize) return grant.bundleDir;
    try {
      return await this.#raceExit(this.#host.specialize(grant), 'load');
    } catch (err) {
      this.kill('shutdown');
      throw err instanceof NimbusError
        ? err
        : new NimbusError('NIMBUS_SANDBOX_FAILED', `the instance's sandbox could not be set up: ${(err as Error).message}`);
    }
  }

  /** Settles with `work`, or fails as soon as the instance exits. */
  #raceExit<T>(work: Promise<T>, step: string): Promise<T> {
    return Promise.race([
      work,
      this.#exited.then(() => {
        throw new NimbusError('NIMBUS_LOAD_FAILED', `instance exited during ${step}${this.#logs.lastStderr ? `: ${this.#logs.lastStderr}` : ''}`);
      }),
    ]);
  }

  /** 3: specialises a generic instance; resolves with the detected style. */
  async load(msg: LoadMessage): Promise<string> {
    this.state = 'loading';
    this.#send(encodeJsonFrame(FrameType.LOAD, 0, msg));
    // A process runtime waits for its own program (PROCESS_READY_TIMEOUT_MS) and reports why; give it room to.
    const timeoutMs = msg.runtime === 'process' ? PROCESS_READY_TIMEOUT_MS + INSTANCE_START_TIMEOUT_MS : INSTANCE_START_TIMEOUT_MS;
    const { type, payload } = await this.#awaitControl(FrameType.LOADED, timeoutMs, 'load');
    if (type === FrameType.LOAD_ERROR) {
      const e = JSON.parse(payload.toString('utf8')) as LoadErrorMessage;
      const code = isErrorCode(e.code) ? e.code : 'NIMBUS_LOAD_FAILED';
      // The stack (with platform paths) goes to the function's logs, not to the caller.
      throw new NimbusError(code, `function "${msg.functionName}" failed to load: ${e.message}`);
    }
    this.loaded = JSON.parse(payload.toString('utf8')) as LoadedMessage;
    this.style = this.loaded.style;
    this.state = 'ready';
    return this.style;
  }

  /** 4: starts an invocation; the caller streams the body with sendBody/endBody. */
  invoke(head: RequestHead, sink: InvocationSink): number {
    const stream = this.#nextStream++;
    if (this.state === 'exited') {
      queueMicrotask(() => sink.error(exitError(this.killReason, this.#exit)));
      return stream;
    }
    this.lastActive = Date.now();
    this.#streams.set(stream, { sink, responded: false, requestId: head.requestId });
    this.#logs.requestStarted(head.requestId);
    this.#send(encodeJsonFrame(FrameType.REQ_HEAD, stream, head));
    return stream;
  }

  sendBody(stream: number, chunk: Buffer): void {
    if (this.#streams.has(stream)) this.#send(encodeFrame(FrameType.REQ_BODY, stream, chunk));
  }

  endBody(stream: number): void {
    if (this.#streams.has(stream)) this.#send(encodeFrame(FrameType.REQ_END, stream));
  }

  /** Flow control for one stream's response body: the client is slow, or has caught up. */
  pause(stream: number): void {
    if (this.#streams.has(stream) && this.state !== 'exited') this.#send(encodeFrame(FrameType.PAUSE, stream));
  }

  resume(stream: number): void {
    if (this.#streams.has(stream) && this.state !== 'exited') this.#send(encodeFrame(FrameType.RESUME, stream));
  }

  /** The client went away: tell the function, stop forwarding its response. */
  cancel(stream: number): void {
    const s = this.#streams.get(stream);
    if (!s || this.state === 'exited') return;
    s.responded = true;
    this.#send(encodeFrame(FrameType.CANCEL, stream));
  }

  /**
   * Memory in MB (0 when unknown): a process's resident set from /proc; a thread's own
   * heap and external memory (Buffers, ArrayBuffers) as it last reported them, never
   * the platform's whole resident set, which it shares.
   */
  residentMB(): number {
    return this.#host.memoryMB();
  }

  /**
   * One request ran past its deadline. Alone on the instance, it takes the instance down
   * (it may be stuck in a loop). Sharing it, that request gets its 504 now, the instance
   * takes no new work, and it exits once the others finish, or after graceMs at most.
   */
  timeOut(stream: number, graceMs: number): void {
    if (this.state === 'exited' || this.state === 'stopping') return;
    if (this.busy <= 1) {
      this.kill('timeout');
      return;
    }
    const s = this.#streams.get(stream);
    if (s && !s.responded) {
      s.responded = true;
      s.sink.error(exitError('timeout', undefined));
      this.#send(encodeFrame(FrameType.CANCEL, stream));
    }
    if (this.state === 'ready') {
      this.state = 'draining';
      setTimeout(() => this.kill('timeout'), graceMs).unref();
      this.onSlotFree(this);
    }
  }

  /** Ends the instance now; requests still waiting fail with the reason's error. */
  kill(reason: KillReason): void {
    if (this.state === 'exited') return;
    this.killReason ??= reason;
    this.state = 'stopping';
    this.#host.kill();
  }

  /** 5: graceful stop; idempotent; resolves once the process or thread has exited. */
  async dispose(graceMs = INSTANCE_STOP_GRACE_MS): Promise<void> {
    if (this.state !== 'exited' && this.state !== 'stopping') {
      this.state = 'stopping';
      this.#host.stop();
      const timer = setTimeout(() => this.#host.kill(), graceMs);
      await this.#exited;
      clearTimeout(timer);
    }
    await this.#exited;
  }

  #onFrame(type: number, stream: number, payload: Buffer): void {
    if (stream >= TUNNEL_STREAM_BIT) {
      this.#onTunnelFrame(type, stream, payload);
      return;
    }
    if (stream === 0) {
      const waiter = this.#control;
      this.#control = undefined;
      waiter?.resolve(payload, type);
      return;
    }
    const s = this.#streams.get(stream);
    if (!s) return;
    switch (type) {
      case FrameType.RES_HEAD:
        if (!s.responded) s.sink.head(JSON.parse(payload.toString('utf8')) as ResponseHead);
        break;
      case FrameType.RES_BODY:
        if (!s.responded) s.sink.body(payload);
        break;
      case FrameType.RES_END:
        if (!s.responded) {
          s.responded = true;
          s.sink.end();
        }
        break;
      case FrameType.RES_ERROR:
        if (!s.responded) {
          s.responded = true;
          s.sink.error(functionError(JSON.parse(payload.toString('utf8')) as InvocationErrorMessage));
        }
        break;
      case FrameType.DONE: {
        this.#streams.delete(stream);
        this.#logs.requestEnded(s.requestId);
        this.busy--;
        this.lastActive = Date.now();
        this.onSlotFree(this);
        break;
      }
    }
  }

  #onTunnelFrame(type: number, stream: number, payload: Buffer): void {
    if (type === FrameType.TUNNEL_OPEN) {
      if (!this.#onTunnel || this.#tunnels.has(stream) || this.#tunnels.size >= MAX_TUNNELS_PER_INSTANCE || this.state === 'exited') {
        this.#send(encodeFrame(FrameType.TUNNEL_END, stream));
        return;
      }
      const socket = new TunnelSocket(this.#host.channel, stream);
      this.#tunnels.set(stream, socket);
      socket.once('close', () => this.#tunnels.delete(stream));
      this.#onTunnel(this, socket);
      return;
    }
    const socket = this.#tunnels.get(stream);
    if (!socket) return;
    if (type === FrameType.TUNNEL_DATA) socket.receive(payload);
    else if (type === FrameType.TUNNEL_END) socket.receiveEnd();
    else if (type === FrameType.TUNNEL_PAUSE) socket.peerPause();
    else if (type === FrameType.TUNNEL_RESUME) socket.peerResume();
  }

  #awaitControl(expected: number, timeoutMs: number, step: string): Promise<{ type: number; payload: Buffer }> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: NimbusError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#control = undefined;
        reject(err);
      };
      const timer = setTimeout(() => fail(new NimbusError('NIMBUS_LOAD_FAILED', `instance did not finish ${step} within ${timeoutMs} ms`)), timeoutMs);
      void this.#exited.then(() => {
        const how = this.#exit?.signal ?? `exit code ${this.#exit?.code}`;
        fail(new NimbusError('NIMBUS_LOAD_FAILED', `instance exited during ${step} (${how})${this.#logs.lastStderr ? `: ${this.#logs.lastStderr}` : ''}`));
      });
      this.#control = {
        resolve: (payload, type) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (type !== expected && !(expected === FrameType.LOADED && type === FrameType.LOAD_ERROR)) {
            reject(new NimbusError('NIMBUS_INTERNAL', `protocol error: expected frame ${expected}, got ${type}`));
          } else resolve({ type, payload });
        },
      };
    });
  }

  #onHostExit(exit: HostExit): void {
    if (this.#logs.sawHeapOom || exit.outOfMemory) this.killReason ??= 'memory';
    this.state = 'exited';
    for (const socket of this.#tunnels.values()) socket.abort();
    this.#tunnels.clear();
    const err = exitError(this.killReason, exit);
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.busy = 0;
    for (const s of streams) {
      if (!s.responded) {
        s.responded = true;
        s.sink.error(err);
      }
    }
    this.onExit(this);
  }
}

function functionError(e: InvocationErrorMessage): NimbusError {
  const code = isErrorCode(e.code) ? e.code : 'NIMBUS_FUNCTION_ERROR';
  const what = code === 'NIMBUS_UNHANDLED_REJECTION' ? 'unhandled promise rejection' : 'function error';
  return new NimbusError(code, `${what}: ${e.errorType ?? 'Error'}: ${e.message}`, {
    details: { errorType: e.errorType ?? 'Error', errorMessage: e.message },
    functionStack: e.stack,
  });
}

function exitError(reason: KillReason | undefined, exit: HostExit | undefined): NimbusError {
  switch (reason) {
    case 'timeout':
      return new NimbusError('NIMBUS_FUNCTION_TIMEOUT', 'the function did not finish within its timeout');
    case 'memory':
      return new NimbusError('NIMBUS_MEMORY_LIMIT', 'the instance exceeded its memory limit and was stopped');
    case 'shutdown':
      return new NimbusError('NIMBUS_SHUTTING_DOWN', 'the instance was stopped before it answered');
    default:
      return new NimbusError('NIMBUS_INSTANCE_EXITED', `the instance exited (${exit?.signal ?? `exit code ${exit?.code ?? null}`}) before it answered`);
  }
}
