import { createHash, randomUUID } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, openSync, readdirSync, unlinkSync } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type Database from 'better-sqlite3';
import { NimbusError } from '../shared/errors.js';
import {
  decodeCursor,
  encodeCursor,
  keyBytes,
  listLimit,
  MAX_OBJECT_BYTES,
  MAX_OBJECT_KEY_BYTES,
  prefixBytes,
  successor,
  validateStateName,
} from './common.js';

export const OBJECTS_SCHEMA = `
CREATE TABLE IF NOT EXISTS objects (
  bucket TEXT NOT NULL,
  key BLOB NOT NULL,
  file TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  etag TEXT NOT NULL,
  content_type TEXT,
  metadata TEXT NOT NULL,
  uploaded_at INTEGER NOT NULL,
  PRIMARY KEY (bucket, key)
);
CREATE TABLE IF NOT EXISTS object_changes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  action TEXT NOT NULL,
  info TEXT NOT NULL,
  at INTEGER NOT NULL
);
`;

export interface ObjectInfo {
  bucket: string;
  key: string;
  size: number;
  /** MD5 of the body, hex, without quotes. */
  etag: string;
  contentType: string | null;
  customMetadata: Record<string, string>;
  /** Epoch ms. */
  uploadedAt: number;
}

export interface ObjectListResult {
  objects: ObjectInfo[];
  /** With a delimiter: the distinct key prefixes up to and including the delimiter after `prefix`. */
  delimitedPrefixes: string[];
  /** Only when truncated: pass it back to get the next page. */
  cursor?: string;
  truncated: boolean;
}

export interface ObjectChange {
  id: number;
  action: 'created' | 'deleted';
  /** For 'deleted', the info the object had. */
  object: ObjectInfo;
  at: number;
}

interface Row {
  bucket: string;
  key: Buffer;
  file: string;
  size: number;
  etag: string;
  content_type: string | null;
  metadata: string;
  uploaded_at: number;
}

const TEMP_SUFFIX = '.tmp';

const toInfo = (r: Row): ObjectInfo => ({
  bucket: r.bucket,
  key: r.key.toString('utf8'),
  size: r.size,
  etag: r.etag,
  contentType: r.content_type,
  customMetadata: JSON.parse(r.metadata) as Record<string, string>,
  uploadedAt: r.uploaded_at,
});

const badRequest = (message: string, hint: string) => new NimbusError('NIMBUS_INVALID_REQUEST', message, { hint });

function validateMetadata(contentType: unknown, metadata: unknown): void {
  if (contentType !== undefined && typeof contentType !== 'string') throw badRequest('contentType must be a string', 'pass a media type such as "image/png"');
  if (metadata === undefined) return;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata) || Object.values(metadata).some((v) => typeof v !== 'string')) {
    throw badRequest('customMetadata must be an object of string values', 'convert each value to a string');
  }
}

async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  let done = 0;
  while (done < chunk.byteLength) done += (await fh.write(chunk, done, chunk.byteLength - done)).bytesWritten;
}

const unlinkQuietly = (path: string) => unlink(path).catch(() => {});

/**
 * Object buckets: each body is a file under the objects folder named by a random id
 * (keys may hold "/" or anything else), its metadata a row in the state database. A
 * put writes and fsyncs the file before the row that points at it commits, so a crash
 * leaves at worst an unreferenced file, which the next start deletes. Every change
 * commits together with a row of the change outbox, which storage-event triggers read.
 */
export class ObjectStore {
  readonly #dir: string;
  readonly #now: () => number;
  readonly #changed: () => void;
  readonly #stmts;
  readonly #commitPut: (row: Row) => string | undefined;
  readonly #commitDelete: (bucket: string, key: Buffer) => Row | undefined;

  constructor(db: Database.Database, dir: string, now: () => number, changed: () => void) {
    this.#dir = dir;
    this.#now = now;
    this.#changed = changed;
    this.#stmts = {
      get: db.prepare<[string, Buffer], Row>('SELECT * FROM objects WHERE bucket = ? AND key = ?'),
      upsert: db.prepare<[Row]>(
        `INSERT INTO objects (bucket, key, file, size, etag, content_type, metadata, uploaded_at)
         VALUES (@bucket, @key, @file, @size, @etag, @content_type, @metadata, @uploaded_at)
         ON CONFLICT (bucket, key) DO UPDATE SET file = excluded.file, size = excluded.size, etag = excluded.etag,
           content_type = excluded.content_type, metadata = excluded.metadata, uploaded_at = excluded.uploaded_at`,
      ),
      delete: db.prepare<[string, Buffer], Row>('DELETE FROM objects WHERE bucket = ? AND key = ? RETURNING *'),
      list: db.prepare<[{ bucket: string; start: Buffer; hi: Buffer | null; limit: number }], Row>(
        'SELECT * FROM objects WHERE bucket = @bucket AND key >= @start AND (@hi IS NULL OR key < @hi) ORDER BY key LIMIT @limit',
      ),
      buckets: db.prepare<[], { name: string; objects: number; bytes: number }>(
        'SELECT bucket AS name, COUNT(*) AS objects, SUM(size) AS bytes FROM objects GROUP BY bucket ORDER BY bucket',
      ),
      fileInUse: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM objects WHERE file = ?'),
      addChange: db.prepare('INSERT INTO object_changes (action, info, at) VALUES (?, ?, ?)'),
      changes: db.prepare<[number], { id: number; action: 'created' | 'deleted'; info: string; at: number }>(
        'SELECT id, action, info, at FROM object_changes ORDER BY id LIMIT ?',
      ),
      ack: db.prepare('DELETE FROM object_changes WHERE id IN (SELECT value FROM json_each(?))'),
    };
    this.#commitPut = db.transaction((row: Row) => {
      const old = this.#stmts.get.get(row.bucket, row.key);
      this.#stmts.upsert.run(row);
      this.#stmts.addChange.run('created', JSON.stringify(toInfo(row)), row.uploaded_at);
      return old?.file;
    });
    this.#commitDelete = db.transaction((bucket: string, key: Buffer) => {
      const row = this.#stmts.delete.get(bucket, key);
      if (row) this.#stmts.addChange.run('deleted', JSON.stringify(toInfo(row)), this.#now());
      return row;
    });
    mkdirSync(dir, { recursive: true });
    this.#removeLeftovers();
  }

  /** Deletes temp files of puts cut short by a crash, and files no row points at (a crash after a replace or delete committed). */
  #removeLeftovers(): void {
    for (const entry of readdirSync(this.#dir, { withFileTypes: true })) {
      if (!entry.isFile()) continue;
      if (entry.name.endsWith(TEMP_SUFFIX) || !this.#stmts.fileInUse.get(entry.name)) {
        try {
          unlinkSync(join(this.#dir, entry.name));
        } catch {
          // Already gone.
        }
      }
    }
  }

  /** Streams the body to a file (hashing and counting as it goes), then commits its row and a 'created' change. */
  async put(
    bucket: string,
    key: string,
    body: Buffer | AsyncIterable<Uint8Array>,
    opts: { contentType?: string; customMetadata?: Record<string, string>; maxBytes?: number } = {},
  ): Promise<ObjectInfo> {
    validateStateName('bucket', bucket);
    const k = keyBytes('object', key, MAX_OBJECT_KEY_BYTES);
    validateMetadata(opts.contentType, opts.customMetadata);
    const { maxBytes = MAX_OBJECT_BYTES } = opts;
    if (!Number.isInteger(maxBytes) || maxBytes < 0)
      throw badRequest(`maxBytes must be a whole number of bytes; got ${maxBytes}`, 'leave maxBytes out for the default');
    const limit = Math.min(maxBytes, MAX_OBJECT_BYTES);
    const tooLarge = (size: number) =>
      new NimbusError('NIMBUS_PAYLOAD_TOO_LARGE', `object body is over ${limit} bytes${size > limit ? ` (${size} so far)` : ''}`, {
        hint: `objects are limited to ${limit} bytes here`,
      });
    if (body instanceof Uint8Array && body.byteLength > limit) throw tooLarge(body.byteLength);

    const file = randomUUID();
    const temp = join(this.#dir, file + TEMP_SUFFIX);
    const final = join(this.#dir, file);
    const hash = createHash('md5');
    let size = 0;
    const fh = await open(temp, 'wx');
    try {
      try {
        for await (const chunk of body instanceof Uint8Array ? [body] : body) {
          size += chunk.byteLength;
          if (size > limit) throw tooLarge(size);
          hash.update(chunk);
          await writeAll(fh, chunk);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, final);
    } catch (err) {
      await unlinkQuietly(temp);
      throw err;
    }

    let replaced: string | undefined;
    const row: Row = {
      bucket,
      key: k,
      file,
      size,
      etag: hash.digest('hex'),
      content_type: opts.contentType ?? null,
      metadata: JSON.stringify(opts.customMetadata ?? {}),
      uploaded_at: 0,
    };
    try {
      // The rename must be on disk before a row points at the file's new name.
      const dirHandle = await open(this.#dir, 'r');
      try {
        await dirHandle.sync();
      } finally {
        await dirHandle.close();
      }
      row.uploaded_at = this.#now();
      replaced = this.#commitPut(row);
    } catch (err) {
      await unlinkQuietly(final);
      throw err;
    }
    if (replaced !== undefined) await unlinkQuietly(join(this.#dir, replaced));
    this.#changed();
    return toInfo(row);
  }

  head(bucket: string, key: string): ObjectInfo | undefined {
    validateStateName('bucket', bucket);
    const row = this.#stmts.get.get(bucket, keyBytes('object', key, MAX_OBJECT_KEY_BYTES));
    return row && toInfo(row);
  }

  /**
   * The object's info and a stream of its body (or of a range of it). The file is opened
   * before this returns, so a delete or overwrite that follows does not cut the stream
   * short. The caller must read the stream to its end or destroy it, to close the file.
   */
  get(bucket: string, key: string, range?: { offset: number; length?: number }): { info: ObjectInfo; body: Readable } | undefined {
    validateStateName('bucket', bucket);
    const row = this.#stmts.get.get(bucket, keyBytes('object', key, MAX_OBJECT_KEY_BYTES));
    if (!row) return undefined;
    const info = toInfo(row);
    let start = 0;
    let end = row.size; // exclusive
    if (range !== undefined) {
      const { offset, length } = range;
      if (!Number.isInteger(offset) || offset < 0 || (length !== undefined && (!Number.isInteger(length) || length < 0))) {
        throw badRequest('a range is a whole-number offset and optional length, both 0 or more', 'pass { offset, length } in bytes');
      }
      if (offset > row.size) {
        throw new NimbusError('NIMBUS_INVALID_REQUEST', `range starts at ${offset}, past the end of the ${row.size}-byte object`, {
          status: 416,
          hint: 'start the range within the object',
        });
      }
      start = offset;
      end = length === undefined ? row.size : Math.min(row.size, offset + length);
    }
    const path = join(this.#dir, row.file);
    const fd = openSync(path, 'r');
    if (end === start) {
      closeSync(fd);
      return { info, body: Readable.from([], { objectMode: false }) };
    }
    return { info, body: createReadStream(path, { fd, start, end: end - 1, autoClose: true }) };
  }

  /**
   * Objects in byte order of their keys' UTF-8, as R2 and S3 list them: with a delimiter,
   * keys holding it after the prefix are folded into one delimited prefix each, which
   * counts towards the limit like an object. The cursor is the byte string to resume at.
   */
  list(bucket: string, opts: { prefix?: string; cursor?: string; limit?: number; delimiter?: string } = {}): ObjectListResult {
    validateStateName('bucket', bucket);
    const prefix = prefixBytes(opts.prefix);
    const limit = listLimit(opts.limit);
    if (opts.delimiter !== undefined && typeof opts.delimiter !== 'string') throw badRequest('delimiter must be a string', 'pass a delimiter such as "/"');
    const delimiter = opts.delimiter ? Buffer.from(opts.delimiter, 'utf8') : undefined;
    const hi = successor(prefix);
    const resumeAt = decodeCursor(opts.cursor);
    let start = resumeAt && Buffer.compare(resumeAt, prefix) > 0 ? resumeAt : prefix;
    const objects: ObjectInfo[] = [];
    const delimitedPrefixes: string[] = [];
    let exhausted = false;
    while (!exhausted && objects.length + delimitedPrefixes.length < limit) {
      const want = limit - objects.length - delimitedPrefixes.length;
      const rows = this.#stmts.list.all({ bucket, start, hi, limit: want });
      exhausted = rows.length < want;
      for (const row of rows) {
        const at = delimiter ? row.key.indexOf(delimiter, prefix.length) : -1;
        if (at >= 0) {
          // Everything under this prefix folds into it: resume the scan past all of it.
          const folded = row.key.subarray(0, at + delimiter!.length);
          delimitedPrefixes.push(folded.toString('utf8'));
          start = successor(folded)!;
          exhausted = false;
          break;
        }
        objects.push(toInfo(row));
        start = Buffer.concat([row.key, Buffer.of(0)]); // the least key after this one
      }
    }
    const truncated = !exhausted && this.#stmts.list.all({ bucket, start, hi, limit: 1 }).length > 0;
    return truncated ? { objects, delimitedPrefixes, cursor: encodeCursor(start), truncated } : { objects, delimitedPrefixes, truncated };
  }

  /** Deletes the row and commits a 'deleted' change, then the file; true when the object existed. */
  async delete(bucket: string, key: string): Promise<boolean> {
    validateStateName('bucket', bucket);
    const row = this.#commitDelete(bucket, keyBytes('object', key, MAX_OBJECT_KEY_BYTES));
    if (!row) return false;
    await unlinkQuietly(join(this.#dir, row.file));
    this.#changed();
    return true;
  }

  buckets(): { name: string; objects: number; bytes: number }[] {
    return this.#stmts.buckets.all();
  }

  /** The oldest changes not yet acknowledged. */
  pendingChanges(limit: number): ObjectChange[] {
    if (!Number.isInteger(limit) || limit < 1) throw badRequest(`limit must be a whole number of 1 or more; got ${limit}`, 'pass how many changes to read');
    return this.#stmts.changes.all(limit).map((r) => ({ id: r.id, action: r.action, object: JSON.parse(r.info) as ObjectInfo, at: r.at }));
  }

  /** Removes handled changes from the outbox; unknown ids are ignored. */
  ackChanges(ids: number[]): void {
    if (!Array.isArray(ids) || ids.some((id) => !Number.isInteger(id)))
      throw badRequest('change ids must be whole numbers', 'pass the ids of pendingChanges()');
    if (ids.length > 0) this.#stmts.ack.run(JSON.stringify(ids));
  }
}
