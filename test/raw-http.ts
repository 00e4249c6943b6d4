import { connect, type Socket } from 'node:net';

/** What came back on a raw connection. */
export interface RawExchange {
  /** Everything the server sent, as latin1 text. */
  text: string;
  /** The status of the final response (after any 100 Continue), or 0 if none came. */
  status: number;
  /** The server sent "100 Continue" before its final response. */
  continued: boolean;
  /** The server closed the connection (rather than keeping it for another request). */
  closedByServer: boolean;
}

/**
 * Failure guards only, a passing test never waits this long: for the server to close
 * after a response that said it would, and for any answer at all.
 */
const CLOSE_GRACE_MS = 3_000;
const NO_ANSWER_MS = 10_000;

/** A client connection driven byte by byte, for requests no HTTP client would send. */
export class RawConnection {
  readonly socket: Socket;
  text = '';
  /** Resolves true when the server closed (FIN or reset). */
  readonly closed: Promise<boolean>;
  #isClosed = false;
  #waiters = new Set<() => void>();

  private constructor(socket: Socket) {
    this.socket = socket;
    const notify = () => {
      for (const w of this.#waiters) w();
    };
    this.closed = new Promise((resolve) => {
      const close = () => {
        this.#isClosed = true;
        resolve(true);
        notify();
      };
      socket.on('end', close);
      // The server closing while we still send may surface as a reset: it closed all the same.
      socket.on('error', close);
      socket.on('close', close);
    });
    socket.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('latin1');
      notify();
    });
  }

  static open(port: number, opts: { localAddress?: string } = {}): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', localAddress: opts.localAddress });
      socket.once('connect', () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  /** Writes a request head written with \n line ends (sent as \r\n), and optional body bytes. */
  send(head: string, body?: Buffer): void {
    if (head) this.socket.write(head.replaceAll('\n', '\r\n'));
    if (body) this.socket.write(body);
  }

  /** Resolves once `check` accepts what has arrived, or with false if the server closes (or goes quiet) first. */
  until(check: (text: string) => boolean, timeoutMs = NO_ANSWER_MS): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (value: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(look);
        resolve(value);
      };
      const look = () => {
        if (check(this.text)) done(true);
        else if (this.#isClosed) done(false);
      };
      this.#waiters.add(look);
      look();
    });
  }

  /**
   * Waits for a complete final response; if it says "Connection: close", also for the
   * server to close. A response without it keeps the connection: closedByServer false.
   */
  async result(): Promise<RawExchange> {
    const answered = await this.until(completeResponse);
    let closedByServer = this.#isClosed;
    if (answered && !closedByServer && headerOf(this.text, 'connection')?.toLowerCase() === 'close') {
      let timer: NodeJS.Timeout | undefined;
      closedByServer = await Promise.race([this.closed, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), CLOSE_GRACE_MS)))]);
      clearTimeout(timer);
    }
    this.socket.destroy();
    const statuses = [...this.text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
    return { text: this.text, status: statuses.find((s) => s !== 100) ?? 0, continued: statuses[0] === 100, closedByServer };
  }
}

/** Sends a request head (and `body`, perhaps only part of what Content-Length announces) on a fresh connection. */
export async function exchange(port: number, head: string, opts: { body?: Buffer; localAddress?: string } = {}): Promise<RawExchange> {
  const conn = await RawConnection.open(port, opts);
  conn.send(head, opts.body);
  return conn.result();
}

/** A final (non-100) response whose head and Content-Length body have all arrived. */
export function completeResponse(text: string): boolean {
  const start = text.search(/HTTP\/1\.1 (?!100)\d{3}/);
  if (start === -1) return false;
  const end = text.indexOf('\r\n\r\n', start);
  if (end === -1) return false;
  const length = /\r\ncontent-length: (\d+)/i.exec(text.slice(start, end));
  return text.length - (end + 4) >= Number(length?.[1] ?? 0);
}

/** The value of a response header (the first response's that is not a 100). */
export function headerOf(text: string, name: string): string | undefined {
  return new RegExp(`\\r\\n${name}: ([^\\r]*)`, 'i').exec(text)?.[1];
}
