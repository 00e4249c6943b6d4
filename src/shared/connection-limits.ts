import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { HTTP_CONNECTIONS_CHECK_INTERVAL_MS, HTTP_HEADERS_TIMEOUT_MS, RETRY_AFTER_S } from '../config/defaults.js';
import { NimbusError } from './errors.js';
import { ERROR_CODE_HEADER } from './http.js';

export interface ConnectionLimits {
  /** Open connections on the server, from everyone. */
  total: number;
  /** Open connections from one client IP address. */
  perClient: number;
}

export interface ConnectionStats {
  open(): number;
  clients(): number;
  refused(): number;
  /** Bytes read from accepted connections, open and closed: what clients made the server take in. */
  bytesRead(): number;
}

/**
 * Options for both servers: a connection that has not sent a request's headers within
 * HTTP_HEADERS_TIMEOUT_MS gets 408 and is closed, looked for every second.
 */
export const SERVER_OPTIONS = Object.freeze({ headersTimeout: HTTP_HEADERS_TIMEOUT_MS, connectionsCheckingInterval: HTTP_CONNECTIONS_CHECK_INTERVAL_MS });

/** IPv4 clients arrive as ::ffff:a.b.c.d on a dual-stack listener: one client either way. */
const clientOf = (address: string) => (address.startsWith('::ffff:') ? address.slice(7) : address);

/** What an over-cap connection gets, once, written before anything is read from it. */
function refusal(limits: ConnectionLimits, perClient: boolean): Buffer {
  const message = perClient
    ? `this client already has ${limits.perClient} open connections, the most one client may hold`
    : `the server already has ${limits.total} open connections, the most it accepts`;
  const body = JSON.stringify(new NimbusError('NIMBUS_TOO_MANY_CONNECTIONS', message).toJSON());
  return Buffer.from(
    'HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: application/json\r\n' +
      `retry-after: ${RETRY_AFTER_S}\r\n${ERROR_CODE_HEADER}: NIMBUS_TOO_MANY_CONNECTIONS\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * Caps the server's open connections, in total and per client IP address, so that
 * one client holding thousands of idle sockets cannot starve the others or use up
 * the process's file descriptors. A connection over a cap is answered 503
 * NIMBUS_TOO_MANY_CONNECTIONS and closed at once: the HTTP server never sees it,
 * and nothing it sends is read. (server.maxConnections alone counts everyone together.)
 *
 * It works by standing between the server and its own 'connection' listener (the
 * one node:http installs to parse requests), which only accepted sockets reach.
 */
export function limitConnections(server: Server, limits: ConnectionLimits): ConnectionStats {
  const byClient = new Map<string, number>();
  const sockets = new Set<Socket>();
  let open = 0;
  let refused = 0;
  let closedBytes = 0;
  const overTotal = refusal(limits, false);
  const overClient = refusal(limits, true);
  const parse = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress;
    if (address === undefined) {
      socket.destroy();
      return;
    }
    const client = clientOf(address);
    const mine = byClient.get(client) ?? 0;
    if (open >= limits.total || mine >= limits.perClient) {
      refused++;
      // Written to the kernel, then closed without waiting for the client: a refused socket holds no descriptor.
      socket.on('error', () => {});
      socket.end(open >= limits.total ? overTotal : overClient, () => socket.destroy());
      return;
    }
    open++;
    byClient.set(client, mine + 1);
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      closedBytes += socket.bytesRead;
      open--;
      const left = (byClient.get(client) ?? 1) - 1;
      if (left === 0) byClient.delete(client);
      else byClient.set(client, left);
    });
    for (const listener of parse) listener.call(server, socket);
  });
  const bytesRead = () => {
    let n = closedBytes;
    for (const s of sockets) n += s.bytesRead;
    return n;
  };
  return { open: () => open, clients: () => byClient.size, refused: () => refused, bytesRead };
}

/** The process's soft limit on open files (Linux), or undefined where it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return line && line[1] !== 'unlimited' ? Number(line[1]) : undefined;
  } catch {
    return undefined;
  }
}
