import type Database from 'better-sqlite3';

/** One schema change: run once, in order, inside a transaction with the version bump. */
export interface Migration {
  /** What it does and why, for the reader (and the error if it fails). */
  what: string;
  sql: string;
}

/**
 * Brings a database up to the newest schema. PRAGMA user_version counts the migrations
 * applied; each runs in a transaction together with its bump, so a crash leaves the file
 * at one version or the next, never between. A file newer than this code is refused
 * rather than half understood.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[]): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new Error(`${db.name} has schema version ${current}, newer than this Nimbus knows (${migrations.length}); run a newer Nimbus on this data dir`);
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v].sql);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

/**
 * The function store's migrations (sqlite-store.ts), on top of its first schema. Append
 * only: a data dir keeps the number of those it has applied.
 */
export const STORE_MIGRATIONS: readonly Migration[] = [
  {
    what: "versions.digest: the whole upload's hash, apart from the bundle folder's (which leaves the manifest out)",
    // Until now a version's sha256 was the whole upload's hash: that is its digest.
    sql: 'ALTER TABLE versions ADD COLUMN digest TEXT; UPDATE versions SET digest = sha256;',
  },
  {
    what: 'secrets: values given to a function at LOAD, set through the admin API',
    sql: `CREATE TABLE secrets (
      function TEXT NOT NULL,
      name TEXT NOT NULL,
      value TEXT NOT NULL,
      updated_at INTEGER NOT NULL,
      PRIMARY KEY (function, name)
    ) WITHOUT ROWID;`,
  },
];
