import type Database from 'better-sqlite3';
import { NimbusError } from '../shared/errors.js';
import { decodeCursor, encodeCursor, keyBytes, listLimit, MAX_KV_KEY_BYTES, MAX_KV_VALUE_BYTES, prefixBytes, successor, validateStateName } from './common.js';

export const KV_SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (
  ns TEXT NOT NULL,
  key BLOB NOT NULL,
  value BLOB NOT NULL,
  expires_at INTEGER,
  PRIMARY KEY (ns, key)
);
CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;
`;

export interface KvEntry {
  value: Buffer;
  /** Epoch ms, or null for a key that never expires. */
  expiresAt: number | null;
}

export interface KvListResult {
  keys: { name: string; expiresAt: number | null }[];
  /** Only when more keys remain: pass it back to get the next page. */
  cursor?: string;
  complete: boolean;
}

interface ListParams {
  ns: string;
  lo: Buffer;
  hi: Buffer | null;
  after: Buffer | null;
  now: number;
  limit: number;
}

/** Expired rows one sweep deletes at most, so that a put never pays for a large backlog. */
const SWEEP_BATCH = 100;
/** A put sweeps expired rows at most this often (by the injected clock). */
const SWEEP_INTERVAL_MS = 1_000;

/**
 * Key-value namespaces in the state database. A key is visible until its expiresAt;
 * expired rows are deleted when read, and a few at a time by puts: no timers.
 */
export class KvStore {
  readonly #now: () => number;
  readonly #stmts;
  readonly #put: (ns: string, key: Buffer, value: Buffer, expiresAt: number | null, now: number) => void;
  #lastSweep = Number.NEGATIVE_INFINITY;

  constructor(db: Database.Database, now: () => number) {
    this.#now = now;
    this.#stmts = {
      get: db.prepare<[string, Buffer], { value: Buffer; expires_at: number | null }>('SELECT value, expires_at FROM kv WHERE ns = ? AND key = ?'),
      put: db.prepare('INSERT OR REPLACE INTO kv (ns, key, value, expires_at) VALUES (?, ?, ?, ?)'),
      deleteExpired: db.prepare('DELETE FROM kv WHERE ns = ? AND key = ? AND expires_at <= ?'),
      delete: db.prepare<[string, Buffer], { expires_at: number | null }>('DELETE FROM kv WHERE ns = ? AND key = ? RETURNING expires_at'),
      sweep: db.prepare(`DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv WHERE expires_at <= ? LIMIT ${SWEEP_BATCH})`),
      list: db.prepare<[ListParams], { key: Buffer; expires_at: number | null }>(
        `SELECT key, expires_at FROM kv
         WHERE ns = @ns AND key >= @lo AND (@hi IS NULL OR key < @hi) AND (@after IS NULL OR key > @after) AND (expires_at IS NULL OR expires_at > @now)
         ORDER BY key LIMIT @limit`,
      ),
      namespaces: db.prepare<[number], { name: string; keys: number }>(
        'SELECT ns AS name, COUNT(*) AS keys FROM kv WHERE expires_at IS NULL OR expires_at > ? GROUP BY ns ORDER BY ns',
      ),
    };
    // The sweep shares the put's transaction: one commit (one fsync) for both.
    this.#put = db.transaction((ns: string, key: Buffer, value: Buffer, expiresAt: number | null, now: number) => {
      if (now - this.#lastSweep >= SWEEP_INTERVAL_MS) {
        this.#lastSweep = now;
        this.#stmts.sweep.run(now);
      }
      this.#stmts.put.run(ns, key, value, expiresAt);
    });
  }

  /** The value and expiry of a key; undefined when it is missing or expired. */
  get(ns: string, key: string): KvEntry | undefined {
    validateStateName('namespace', ns);
    const k = keyBytes('KV', key, MAX_KV_KEY_BYTES);
    const row = this.#stmts.get.get(ns, k);
    if (!row) return undefined;
    const now = this.#now();
    if (row.expires_at !== null && row.expires_at <= now) {
      this.#stmts.deleteExpired.run(ns, k, now);
      return undefined;
    }
    return { value: row.value, expiresAt: row.expires_at };
  }

  /** Stores a value, replacing any; it expires at `expiresAt` (epoch ms) if given. */
  put(ns: string, key: string, value: Uint8Array, opts: { expiresAt?: number } = {}): void {
    validateStateName('namespace', ns);
    const k = keyBytes('KV', key, MAX_KV_KEY_BYTES);
    if (!(value instanceof Uint8Array))
      throw new NimbusError('NIMBUS_INVALID_REQUEST', 'a KV value must be bytes (a Buffer)', { hint: 'encode the value first' });
    if (value.byteLength > MAX_KV_VALUE_BYTES) {
      throw new NimbusError('NIMBUS_PAYLOAD_TOO_LARGE', `KV value is ${value.byteLength} bytes; the limit is ${MAX_KV_VALUE_BYTES} bytes`, {
        hint: 'KV values are limited to 25 MiB; store larger data in a bucket',
      });
    }
    const { expiresAt } = opts;
    if (expiresAt !== undefined && !Number.isFinite(expiresAt)) {
      throw new NimbusError('NIMBUS_INVALID_REQUEST', `expiresAt must be a time in epoch milliseconds; got ${String(expiresAt)}`, {
        hint: 'pass Date.now() + ttl',
      });
    }
    const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    this.#put(ns, k, bytes, expiresAt === undefined ? null : Math.floor(expiresAt), this.#now());
  }

  /** Deletes a key; true when it existed (and had not expired). */
  delete(ns: string, key: string): boolean {
    validateStateName('namespace', ns);
    const row = this.#stmts.delete.get(ns, keyBytes('KV', key, MAX_KV_KEY_BYTES));
    return row !== undefined && (row.expires_at === null || row.expires_at > this.#now());
  }

  /** Live keys in byte order of their UTF-8, a page at a time. */
  list(ns: string, opts: { prefix?: string; cursor?: string; limit?: number } = {}): KvListResult {
    validateStateName('namespace', ns);
    const prefix = prefixBytes(opts.prefix);
    const after = decodeCursor(opts.cursor) ?? null;
    const limit = listLimit(opts.limit);
    const rows = this.#stmts.list.all({ ns, lo: prefix, hi: successor(prefix), after, now: this.#now(), limit: limit + 1 });
    const more = rows.length > limit;
    if (more) rows.length = limit;
    const keys = rows.map((r) => ({ name: r.key.toString('utf8'), expiresAt: r.expires_at }));
    return more ? { keys, cursor: encodeCursor(rows[limit - 1].key), complete: false } : { keys, complete: true };
  }

  /** Namespaces with at least one live key, by name. */
  namespaces(): { name: string; keys: number }[] {
    return this.#stmts.namespaces.all(this.#now());
  }
}
