import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type Bindings, bindingTarget } from '../config/triggers.js';
import { NimbusError } from '../shared/errors.js';
import { sendError, sendJson } from '../shared/http.js';
import { handleState, type StateDeps } from './http.js';

/** What an instance finds in its environment to reach its bindings. */
export const STATE_URL_ENV = 'NIMBUS_STATE_URL';
export const STATE_TOKEN_ENV = 'NIMBUS_STATE_TOKEN';

interface Grant {
  fn: string;
  bindings: Bindings;
}

const digest = (token: string) => createHash('sha256').update(token).digest('base64url');

/**
 * The HTTP API through which functions reach their KV namespaces, buckets and topics
 * (the Node shim's env.<NAME> objects use it too; Python and programs call it
 * directly, docs/state.md). It listens on no port: each connection comes over the
 * channel of the instance that opened it (accept(), fed by the instance's relay at
 * NIMBUS_STATE_URL inside its sandbox). Each instance gets its own token, valid until
 * the instance exits, and addresses state by its binding names: a function reaches
 * only what its manifest binds.
 */
export class StateEndpoint {
  readonly #server: Server;
  readonly #grants = new Map<string, Grant>();
  readonly #sockets = new Set<Duplex>();

  constructor(deps: StateDeps) {
    this.#server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://state');
      const method = req.method ?? 'GET';
      const grant = this.#grant(req.headers.authorization);
      const run = async () => {
        if (!grant) throw new NimbusError('NIMBUS_AUTH_INVALID', `the state endpoint needs "Authorization: Bearer $${STATE_TOKEN_ENV}"`);
        if (url.pathname === '/v1/bindings' && method === 'GET') {
          return sendJson(res, 200, { function: grant.fn, bindings: grant.bindings });
        }
        const resolve = (kind: 'kv' | 'bucket' | 'topic', name: string) => {
          const b = grant.bindings[name];
          const target = b && bindingTarget(b);
          if (!target || target.kind !== kind) {
            const bound = Object.keys(grant.bindings).join(', ') || 'none';
            throw new NimbusError(
              'NIMBUS_UNAUTHORIZED_BINDING',
              `function "${grant.fn}" has no ${kind} binding named ${JSON.stringify(name)} (its bindings: ${bound})`,
            );
          }
          return target.name;
        };
        if (!(await handleState(deps, resolve, method, url, req, res))) throw new NimbusError('NIMBUS_NOT_FOUND', `no state route ${url.pathname}`);
      };
      run().catch((err: unknown) => sendError(res, err));
    });
    // Bodies stream to and from buckets: no request timeout beyond the function's own.
    this.#server.requestTimeout = 0;
  }

  #grant(header: string | undefined): Grant | undefined {
    const m = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    return m ? this.#grants.get(digest(m[1])) : undefined;
  }

  /** Serves one connection an instance opened over its channel. */
  accept(socket: Duplex): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    this.#server.emit('connection', socket);
  }

  /**
   * A credential for one instance of the function; revoke() when the instance exits.
   * The instance's shim sets NIMBUS_STATE_URL itself (its relay's address).
   */
  issue(fn: string, bindings: Bindings): { env: Record<string, string>; revoke(): void } {
    const token = `nimbus_state_${randomBytes(24).toString('base64url')}`;
    const key = digest(token);
    this.#grants.set(key, { fn, bindings });
    return { env: { [STATE_TOKEN_ENV]: token }, revoke: () => this.#grants.delete(key) };
  }

  /** Credentials alive now (one per running instance with bindings). */
  get grants(): number {
    return this.#grants.size;
  }

  close(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }
}
