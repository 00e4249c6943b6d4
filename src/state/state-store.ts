import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type Database from 'better-sqlite3';
import { openSqlite } from '../store/sqlite/open.js';
import { KV_SCHEMA, type KvEntry, type KvListResult, KvStore } from './kv.js';
import { OBJECTS_SCHEMA, type ObjectChange, type ObjectInfo, type ObjectListResult, ObjectStore } from './objects.js';

export { MAX_KV_KEY_BYTES, MAX_KV_VALUE_BYTES, MAX_LIST_LIMIT, MAX_OBJECT_BYTES, MAX_OBJECT_KEY_BYTES } from './common.js';
export type { KvEntry, KvListResult } from './kv.js';
export type { ObjectChange, ObjectInfo, ObjectListResult } from './objects.js';

/**
 * Functions' state, embedded: KV namespaces and object buckets in <dataDir>/state.db
 * (SQLite, synchronous=FULL: a write is on disk when it returns), object bodies as files
 * under <dataDir>/objects/. Object changes also go to an outbox in the same transaction,
 * so storage-event triggers see every committed change exactly once, even across a crash.
 */
export class StateStore {
  /** Called (synchronously) after each object change commits: a cue to read pendingChanges(). Must not throw. */
  onChange: () => void = () => {};
  readonly #db: Database.Database;
  readonly #kv: KvStore;
  readonly #objects: ObjectStore;

  constructor(dataDir: string, opts: { now?: () => number } = {}) {
    const now = opts.now ?? Date.now;
    mkdirSync(dataDir, { recursive: true });
    this.#db = openSqlite(join(dataDir, 'state.db'), 'FULL', KV_SCHEMA + OBJECTS_SCHEMA);
    try {
      this.#kv = new KvStore(this.#db, now);
      this.#objects = new ObjectStore(this.#db, join(dataDir, 'objects'), now, () => this.onChange());
    } catch (err) {
      this.#db.close();
      throw err;
    }
  }

  /** The value of a key; undefined when it is missing or has expired. */
  kvGet(ns: string, key: string): KvEntry | undefined {
    return this.#kv.get(ns, key);
  }

  /** Stores a value (replacing any), expiring at `expiresAt` (epoch ms) if given. */
  kvPut(ns: string, key: string, value: Buffer, opts?: { expiresAt?: number }): void {
    this.#kv.put(ns, key, value, opts);
  }

  /** True when the key existed (and had not expired). */
  kvDelete(ns: string, key: string): boolean {
    return this.#kv.delete(ns, key);
  }

  /** Live keys in byte order; `cursor` (base64url of the last key) is set only when more remain. */
  kvList(ns: string, opts?: { prefix?: string; cursor?: string; limit?: number }): KvListResult {
    return this.#kv.list(ns, opts);
  }

  kvNamespaces(): { name: string; keys: number }[] {
    return this.#kv.namespaces();
  }

  /** Streams the body to disk (never buffered whole), then commits it; NIMBUS_PAYLOAD_TOO_LARGE past maxBytes. */
  putObject(
    bucket: string,
    key: string,
    body: Buffer | AsyncIterable<Uint8Array>,
    opts?: { contentType?: string; customMetadata?: Record<string, string>; maxBytes?: number },
  ): Promise<ObjectInfo> {
    return this.#objects.put(bucket, key, body, opts);
  }

  headObject(bucket: string, key: string): ObjectInfo | undefined {
    return this.#objects.head(bucket, key);
  }

  /** The body stream is already open: a later delete does not cut it short. Read it to the end or destroy it. */
  getObject(bucket: string, key: string, range?: { offset: number; length?: number }): { info: ObjectInfo; body: Readable } | undefined {
    return this.#objects.get(bucket, key, range);
  }

  listObjects(bucket: string, opts?: { prefix?: string; cursor?: string; limit?: number; delimiter?: string }): ObjectListResult {
    return this.#objects.list(bucket, opts);
  }

  deleteObject(bucket: string, key: string): Promise<boolean> {
    return this.#objects.delete(bucket, key);
  }

  buckets(): { name: string; objects: number; bytes: number }[] {
    return this.#objects.buckets();
  }

  /** Unacknowledged object changes, oldest first. */
  pendingChanges(limit: number): ObjectChange[] {
    return this.#objects.pendingChanges(limit);
  }

  ackChanges(ids: number[]): void {
    this.#objects.ackChanges(ids);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
