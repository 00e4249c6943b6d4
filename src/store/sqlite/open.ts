import Database from 'better-sqlite3';

/**
 * Opens (or creates) a SQLite file the way every embedded store here uses it: WAL, so
 * readers never block the writer; a busy timeout; the schema applied. `synchronous`
 * chooses whether a commit waits for fsync (FULL) or only for the OS (NORMAL).
 */
export function openSqlite(file: string, synchronous: 'FULL' | 'NORMAL', schema: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma('busy_timeout = 5000');
  db.exec(schema);
  return db;
}
