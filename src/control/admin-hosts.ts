import { isIP } from 'node:net';
import { isIpLiteral, splitHost } from '../config/edge.js';

/** Hosts a client on this machine may use whatever the admin API listens on. */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];
/** The port a Host header without one stands for (the admin API speaks plain HTTP). */
const DEFAULT_HTTP_PORT = 80;

/**
 * The Host headers the admin API answers to, against DNS rebinding: a web page
 * whose name an attacker re-points at 127.0.0.1 reaches the admin API from the
 * victim's browser, but its requests carry the attacker's name in Host. Allowed:
 * the host the admin API listens on, localhost, 127.0.0.1 and [::1], each with the
 * admin port, and the names the operator adds (`nimbus up --admin-host`). A name
 * added without a port also matches with no port at all, as it arrives through a
 * reverse proxy. Listening on every interface (0.0.0.0 or ::), any IP literal with
 * the port is allowed too: a rebinding always arrives by name, and the machine's
 * addresses are not known in advance.
 *
 * @example
 *   const hosts = new AdminHosts(['admin.internal']);
 *   hosts.bind('127.0.0.1', 8081);
 *   hosts.allows('127.0.0.1:8081'); // true
 *   hosts.allows('evil.example:8081'); // false
 */
export class AdminHosts {
  readonly #exact = new Set<string>();
  readonly #anyPort: string[] = [];
  #port: number | undefined;
  #anyIpLiteral = false;

  /** `extra`: names validated by resolveEdge, each "name" or "name:port". */
  constructor(readonly extra: readonly string[] = []) {}

  /** Called once the admin API listens, with the host it was given and the port it got. */
  bind(listenHost: string, port: number): void {
    this.#port = port;
    const host = isIP(listenHost) === 6 ? `[${listenHost}]` : listenHost.toLowerCase();
    this.#anyIpLiteral = host === '0.0.0.0' || host === '[::]';
    for (const name of [host, ...LOOPBACK_NAMES]) this.#exact.add(`${name}:${port}`);
    for (const raw of this.extra) {
      const h = splitHost(raw);
      if (!h) continue;
      if (h.port !== undefined) this.#exact.add(`${h.name}:${h.port}`);
      else {
        this.#exact.add(`${h.name}:${port}`);
        this.#anyPort.push(h.name);
      }
    }
  }

  allows(header: string | undefined): boolean {
    if (header === undefined || this.#port === undefined) return false;
    const h = splitHost(header);
    if (!h) return false;
    if (h.port === undefined) return this.#anyPort.includes(h.name) || this.#exact.has(`${h.name}:${DEFAULT_HTTP_PORT}`);
    return this.#exact.has(`${h.name}:${h.port}`) || (this.#anyIpLiteral && h.port === this.#port && isIpLiteral(h.name));
  }
}
