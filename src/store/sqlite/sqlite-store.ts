import { chmodSync, existsSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { FunctionConfig, FunctionRecord, LogEntry, SecretInfo, Store, VersionRecord } from '../store.js';
import { migrate, STORE_MIGRATIONS } from './migrations.js';
import { openSqlite } from './open.js';

/** The first schema; STORE_MIGRATIONS (migrations.ts) change it from there. */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS functions (
  name TEXT PRIMARY KEY,
  latest_id INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  config TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (name, version)
);
CREATE TABLE IF NOT EXISTS logs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  version INTEGER,
  request_id TEXT,
  stream TEXT NOT NULL,
  ts INTEGER NOT NULL,
  line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_name ON logs (name, id);
`;

interface VersionRow {
  id: number;
  name: string;
  version: number;
  sha256: string;
  digest: string;
  config: string;
  created_at: number;
}
interface FunctionRow extends VersionRow {
  f_created_at: number;
  f_updated_at: number;
}
interface LogRow {
  id: number;
  name: string;
  version: number | null;
  request_id: string | null;
  stream: LogEntry['stream'];
  ts: number;
  line: string;
}

const toVersion = (r: VersionRow): VersionRecord => ({
  id: r.id,
  name: r.name,
  version: r.version,
  sha256: r.sha256,
  digest: r.digest,
  config: JSON.parse(r.config) as FunctionConfig,
  createdAt: r.created_at,
});
const toFunction = (r: FunctionRow): FunctionRecord => ({ name: r.name, createdAt: r.f_created_at, updatedAt: r.f_updated_at, latest: toVersion(r) });

const FUNCTION_SELECT = `SELECT v.*, f.created_at AS f_created_at, f.updated_at AS f_updated_at
  FROM functions f JOIN versions v ON v.id = f.latest_id`;

/**
 * The embedded store: one SQLite file in WAL mode. It holds env values and secrets, so
 * the file (and its -wal and -shm companions) are readable by the platform's user only.
 */
export class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly #stmts;

  constructor(file: string) {
    this.#db = openSqlite(file, 'NORMAL', SCHEMA);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
    migrate(this.#db, STORE_MIGRATIONS);
    const db = this.#db;
    this.#stmts = {
      getFunction: db.prepare<[string], FunctionRow>(`${FUNCTION_SELECT} WHERE f.name = ?`),
      listFunctions: db.prepare<[], FunctionRow>(`${FUNCTION_SELECT} ORDER BY f.name`),
      listVersions: db.prepare<[string], VersionRow>('SELECT * FROM versions WHERE name = ? ORDER BY version DESC'),
      maxVersion: db.prepare<[string], { v: number | null }>('SELECT MAX(version) AS v FROM versions WHERE name = ?'),
      insertVersion: db.prepare('INSERT INTO versions (name, version, sha256, digest, config, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      upsertFunction: db.prepare(
        `INSERT INTO functions (name, latest_id, created_at, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET latest_id = excluded.latest_id, updated_at = excluded.updated_at`,
      ),
      deleteFunction: db.prepare('DELETE FROM functions WHERE name = ?'),
      deleteVersions: db.prepare('DELETE FROM versions WHERE name = ?'),
      deleteLogs: db.prepare('DELETE FROM logs WHERE name = ?'),
      deleteSecrets: db.prepare('DELETE FROM secrets WHERE function = ?'),
      listSecrets: db.prepare<[string], { name: string; updated_at: number }>('SELECT name, updated_at FROM secrets WHERE function = ? ORDER BY name'),
      secretValues: db.prepare<[string], { name: string; value: string }>('SELECT name, value FROM secrets WHERE function = ?'),
      hasSecret: db.prepare<[string, string], { n: number }>('SELECT COUNT(*) AS n FROM secrets WHERE function = ? AND name = ?'),
      putSecret: db.prepare(
        `INSERT INTO secrets (function, name, value, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(function, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      ),
      deleteSecret: db.prepare('DELETE FROM secrets WHERE function = ? AND name = ?'),
      moveBundle: db.prepare('UPDATE versions SET sha256 = ? WHERE sha256 = ?'),
      insertLog: db.prepare('INSERT INTO logs (name, version, request_id, stream, ts, line) VALUES (?, ?, ?, ?, ?, ?)'),
      // Without a cursor: the newest lines (a tail). With one: the next lines after it, oldest
      // first, so paging with `after` never skips a line.
      tailLogs: db.prepare<[string, string | null, string | null, number], LogRow>(
        'SELECT * FROM (SELECT * FROM logs WHERE name = ? AND (? IS NULL OR request_id = ?) ORDER BY id DESC LIMIT ?) ORDER BY id',
      ),
      pageLogs: db.prepare<[string, number, string | null, string | null, number], LogRow>(
        'SELECT * FROM logs WHERE name = ? AND id > ? AND (? IS NULL OR request_id = ?) ORDER BY id LIMIT ?',
      ),
      bundleUsed: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM versions WHERE sha256 = ?'),
      logNames: db.prepare<[], { name: string }>('SELECT DISTINCT name FROM logs'),
      pruneLogs: db.prepare('DELETE FROM logs WHERE name = ? AND id <= (SELECT id FROM logs WHERE name = ? ORDER BY id DESC LIMIT 1 OFFSET ?)'),
    };
  }

  getFunction(name: string): FunctionRecord | undefined {
    const row = this.#stmts.getFunction.get(name);
    return row && toFunction(row);
  }

  listFunctions(): FunctionRecord[] {
    return this.#stmts.listFunctions.all().map(toFunction);
  }

  listVersions(name: string): VersionRecord[] {
    return this.#stmts.listVersions.all(name).map(toVersion);
  }

  deploy(name: string, bundle: { sha256: string; digest: string }, config: FunctionConfig, now: number): { record: FunctionRecord; created: boolean } {
    return this.#db
      .transaction(() => {
        const existing = this.getFunction(name);
        if (existing && existing.latest.digest === bundle.digest) return { record: existing, created: false };
        const version = (this.#stmts.maxVersion.get(name)?.v ?? 0) + 1;
        const { lastInsertRowid } = this.#stmts.insertVersion.run(name, version, bundle.sha256, bundle.digest, JSON.stringify(config), now);
        this.#stmts.upsertFunction.run(name, Number(lastInsertRowid), now, now);
        return { record: this.getFunction(name) as FunctionRecord, created: true };
      })
      .immediate();
  }

  deleteFunction(name: string): boolean {
    return this.#db.transaction(() => {
      const { changes } = this.#stmts.deleteFunction.run(name);
      this.#stmts.deleteVersions.run(name);
      this.#stmts.deleteLogs.run(name);
      this.#stmts.deleteSecrets.run(name);
      return changes > 0;
    })();
  }

  isBundleUsed(sha256: string): boolean {
    return (this.#stmts.bundleUsed.get(sha256)?.n ?? 0) > 0;
  }

  moveBundle(from: string, to: string): void {
    // The folder is renamed once this returns: the change must survive a power loss first,
    // which a NORMAL commit in WAL mode does not promise.
    this.#db.pragma('synchronous = FULL');
    try {
      this.#stmts.moveBundle.run(to, from);
    } finally {
      this.#db.pragma('synchronous = NORMAL');
    }
  }

  listSecrets(fn: string): SecretInfo[] {
    return this.#stmts.listSecrets.all(fn).map((r) => ({ name: r.name, updatedAt: r.updated_at }));
  }

  secretValues(fn: string): Record<string, string> {
    return Object.fromEntries(this.#stmts.secretValues.all(fn).map((r) => [r.name, r.value]));
  }

  putSecret(fn: string, name: string, value: string, now: number): { created: boolean } {
    return this.#db.transaction(() => {
      const created = (this.#stmts.hasSecret.get(fn, name)?.n ?? 0) === 0;
      this.#stmts.putSecret.run(fn, name, value, now);
      return { created };
    })();
  }

  deleteSecret(fn: string, name: string): boolean {
    return this.#stmts.deleteSecret.run(fn, name).changes > 0;
  }

  appendLogs(entries: LogEntry[]): void {
    this.#db.transaction(() => {
      for (const e of entries) {
        const { lastInsertRowid } = this.#stmts.insertLog.run(e.name, e.version, e.requestId, e.stream, e.ts, e.line);
        e.id = Number(lastInsertRowid);
      }
    })();
  }

  readLogs(name: string, opts: { afterId?: number; limit: number; requestId?: string }): LogEntry[] {
    const rid = opts.requestId ?? null;
    const rows = opts.afterId ? this.#stmts.pageLogs.all(name, opts.afterId, rid, rid, opts.limit) : this.#stmts.tailLogs.all(name, rid, rid, opts.limit);
    return rows.map((r) => ({ id: r.id, name: r.name, version: r.version, requestId: r.request_id, stream: r.stream, ts: r.ts, line: r.line }));
  }

  pruneLogs(keepPerFunction: number): void {
    for (const { name } of this.#stmts.logNames.all()) this.#stmts.pruneLogs.run(name, name, keepPerFunction);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
