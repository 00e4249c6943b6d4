import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { DEAD_LETTER_RETENTION_MS, IDEMPOTENCY_WINDOW_MS, INVOCATION_RETENTION_MS } from '../config/defaults.js';
import { openSqlite } from '../store/sqlite/open.js';
import type { EnqueueResult, Lease, Message, MessageStatus, NewMessage, Queue } from './queue.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY,
  queue TEXT NOT NULL,
  meta TEXT NOT NULL,
  body BLOB NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  enqueued_at INTEGER NOT NULL,
  available_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  lease_token TEXT,
  lease_until INTEGER,
  completed_at INTEGER,
  last_error TEXT,
  result TEXT
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (status, available_at);
CREATE INDEX IF NOT EXISTS messages_queue ON messages (queue, status, completed_at);
CREATE TABLE IF NOT EXISTS idempotency (
  queue TEXT NOT NULL,
  key TEXT NOT NULL,
  id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (queue, key)
);
CREATE TABLE IF NOT EXISTS marks (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
`;

interface Row {
  id: string;
  queue: string;
  meta: string;
  body: Buffer;
  status: MessageStatus;
  attempts: number;
  max_attempts: number;
  enqueued_at: number;
  available_at: number;
  expires_at: number;
  completed_at: number | null;
  last_error: string | null;
  result: string | null;
}

const LEASE_EXPIRY_SWEEP_MS = 1_000;
/** How long a settlement (ack, retry, dead letter) may wait for others to share its commit. */
const SETTLE_DELAY_MS = 5;

interface PendingWrite {
  /** Must be on disk before it resolves (an accepted event); otherwise a crash may only cause a redelivery. */
  durable: boolean;
  run(): void;
  resolve(): void;
  reject(err: unknown): void;
  error?: unknown;
}

const toMessage = (r: Row): Message => ({
  id: r.id,
  queue: r.queue,
  meta: JSON.parse(r.meta) as Record<string, unknown>,
  body: r.body,
  status: r.status,
  attempts: r.attempts,
  maxAttempts: r.max_attempts,
  enqueuedAt: r.enqueued_at,
  availableAt: r.available_at,
  expiresAt: r.expires_at,
  completedAt: r.completed_at,
  lastError: r.last_error,
  result: r.result === null ? null : (JSON.parse(r.result) as Record<string, unknown>),
});

/**
 * The embedded queue: one SQLite file in WAL mode with synchronous=FULL, so a commit
 * is on disk (fsync) before enqueue() resolves. Writes arriving in the same turn of the
 * event loop share one transaction (group commit): one fsync for many events, which is
 * what lets thousands of durable enqueues per second through.
 */
export class SqliteQueue implements Queue {
  readonly #db: Database.Database;
  readonly #stmts;
  #pending: PendingWrite[] = [];
  #flushImmediate: NodeJS.Immediate | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  #open = 0;
  #sync: 'FULL' | 'NORMAL' = 'FULL';
  #lastExpiry = 0;

  constructor(file: string) {
    this.#db = openSqlite(file, 'FULL', SCHEMA);
    const db = this.#db;
    this.#stmts = {
      insert: db.prepare(
        `INSERT INTO messages (id, queue, meta, body, status, max_attempts, enqueued_at, available_at, expires_at)
         VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)`,
      ),
      findKey: db.prepare<[string, string, number], { id: string }>('SELECT id FROM idempotency WHERE queue = ? AND key = ? AND created_at > ?'),
      putKey: db.prepare('INSERT OR REPLACE INTO idempotency (queue, key, id, created_at) VALUES (?, ?, ?, ?)'),
      expireLeases: db.prepare("UPDATE messages SET status = 'queued', lease_token = NULL WHERE status = 'running' AND lease_until <= ?"),
      lease: db.prepare<[string, number, number, number], Row>(
        `UPDATE messages SET status = 'running', attempts = attempts + 1, lease_token = ?, lease_until = ?
         WHERE id IN (SELECT id FROM messages WHERE status = 'queued' AND available_at <= ? ORDER BY available_at, rowid LIMIT ?)
         RETURNING *`,
      ),
      complete: db.prepare(
        "UPDATE messages SET status = ?, result = ?, completed_at = ?, lease_token = NULL WHERE id = ? AND lease_token = ? AND status = 'running'",
      ),
      retry: db.prepare(
        "UPDATE messages SET status = 'queued', available_at = ?, last_error = ?, lease_token = NULL WHERE id = ? AND lease_token = ? AND status = 'running'",
      ),
      dead: db.prepare(
        "UPDATE messages SET status = 'dead', last_error = ?, result = ?, completed_at = ?, lease_token = NULL WHERE id = ? AND lease_token = ? AND status = 'running'",
      ),
      get: db.prepare<[string], Row>('SELECT * FROM messages WHERE id = ?'),
      savepoint: db.prepare('SAVEPOINT w'),
      release: db.prepare('RELEASE w'),
      rollbackTo: db.prepare('ROLLBACK TO w'),
      listDead: db.prepare<[string, string | null, string | null, number], Row>(
        `SELECT * FROM messages WHERE queue = ? AND status = 'dead'
         AND (? IS NULL OR rowid > (SELECT rowid FROM messages WHERE id = ?)) ORDER BY rowid LIMIT ?`,
      ),
      redriveAll: db.prepare(
        "UPDATE messages SET status = 'queued', attempts = 0, max_attempts = ?, expires_at = ?, available_at = ?, completed_at = NULL, result = NULL WHERE queue = ? AND status = 'dead'",
      ),
      redriveOne: db.prepare(
        "UPDATE messages SET status = 'queued', attempts = 0, max_attempts = ?, expires_at = ?, available_at = ?, completed_at = NULL, result = NULL WHERE queue = ? AND status = 'dead' AND id = ?",
      ),
      purgeAll: db.prepare("DELETE FROM messages WHERE queue = ? AND status = 'dead'"),
      purgeOne: db.prepare("DELETE FROM messages WHERE queue = ? AND status = 'dead' AND id = ?"),
      drop: db.prepare("DELETE FROM messages WHERE queue = ? RETURNING status IN ('queued', 'running') AS open"),
      countOpen: db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM messages WHERE status IN ('queued', 'running')"),
      nextAvailable: db.prepare<[], { t: number | null }>("SELECT MIN(available_at) AS t FROM messages WHERE status = 'queued'"),
      recover: db.prepare("UPDATE messages SET status = 'queued', lease_token = NULL WHERE status = 'running'"),
      pruneDone: db.prepare("DELETE FROM messages WHERE status IN ('succeeded', 'failed') AND completed_at < ?"),
      pruneDead: db.prepare("DELETE FROM messages WHERE status = 'dead' AND completed_at < ?"),
      pruneKeys: db.prepare('DELETE FROM idempotency WHERE created_at < ?'),
      getMark: db.prepare<[string], { value: number }>('SELECT value FROM marks WHERE name = ?'),
      setMark: db.prepare('INSERT OR REPLACE INTO marks (name, value) VALUES (?, ?)'),
      deleteMarks: db.prepare('DELETE FROM marks WHERE substr(name, 1, length(?)) = ?'),
    };
    this.#open = this.#stmts.countOpen.get()?.n ?? 0;
  }

  /**
   * Runs `fn` in the next group commit (in its own savepoint); resolves after that commit.
   * A batch with a durable write commits with synchronous=FULL (fsync); one with only
   * settlements (acks, retries, leases' bookkeeping) skips the fsync: losing those to a
   * power cut only means a message is delivered again, which at-least-once allows.
   */
  #write<T>(fn: () => T, durable: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let value: T;
      this.#pending.push({
        durable,
        run: () => {
          // A savepoint per write: one that throws rolls back alone (cheaper than a transaction function per call).
          this.#stmts.savepoint.run();
          try {
            value = fn();
          } catch (err) {
            this.#stmts.rollbackTo.run();
            this.#stmts.release.run();
            throw err;
          }
          this.#stmts.release.run();
        },
        resolve: () => resolve(value),
        reject,
      });
      if (durable) {
        // An accepted event is committed in the next turn: the caller is waiting for its 202.
        if (!this.#flushImmediate) {
          this.#flushImmediate = setImmediate(() => this.#flush());
        }
      } else if (!this.#flushImmediate && !this.#flushTimer) {
        // Settlements wait a few ms to share a commit (an ack is not worth an fsync or a WAL write of its own).
        this.#flushTimer = setTimeout(() => this.#flush(), SETTLE_DELAY_MS);
      }
    });
  }

  #flush(): void {
    clearImmediate(this.#flushImmediate);
    clearTimeout(this.#flushTimer);
    this.#flushImmediate = undefined;
    this.#flushTimer = undefined;
    const batch = this.#pending;
    this.#pending = [];
    if (!this.#db.open) {
      for (const entry of batch) entry.reject(new Error('the queue is closed'));
      return;
    }
    const sync = batch.some((e) => e.durable) ? 'FULL' : 'NORMAL';
    if (sync !== this.#sync) {
      this.#db.pragma(`synchronous = ${sync}`);
      this.#sync = sync;
    }
    try {
      this.#db.transaction(() => {
        for (const entry of batch) {
          try {
            entry.run();
          } catch (err) {
            // Its savepoint rolled back; the rest of the batch commits.
            entry.error = err ?? new Error('write failed');
          }
        }
      })();
    } catch (err) {
      // Nothing of the batch is on disk: recount what is open, fail every caller.
      this.#open = this.#stmts.countOpen.get()?.n ?? 0;
      for (const entry of batch) entry.reject(err);
      return;
    }
    for (const entry of batch) {
      if (entry.error !== undefined) entry.reject(entry.error);
      else entry.resolve();
    }
  }

  #insert(m: NewMessage, now: number): EnqueueResult {
    if (m.idempotencyKey !== undefined) {
      const seen = this.#stmts.findKey.get(m.queue, m.idempotencyKey, now - IDEMPOTENCY_WINDOW_MS);
      if (seen) return { id: seen.id, duplicate: true };
    }
    const id = m.id ?? randomUUID();
    this.#stmts.insert.run(id, m.queue, JSON.stringify(m.meta), m.body, m.maxAttempts, now, m.availableAt ?? now, m.expiresAt);
    if (m.idempotencyKey !== undefined) this.#stmts.putKey.run(m.queue, m.idempotencyKey, id, now);
    this.#open++;
    return { id, duplicate: false };
  }

  enqueue(messages: NewMessage[], now = Date.now()): Promise<EnqueueResult[]> {
    return this.#write(() => messages.map((m) => this.#insert(m, now)), true);
  }

  async lease(max: number, leaseMs: number, now = Date.now()): Promise<Lease[]> {
    if (max <= 0) return [];
    const token = randomUUID();
    if (this.#sync !== 'NORMAL') {
      this.#db.pragma('synchronous = NORMAL');
      this.#sync = 'NORMAL';
    }
    // Expired leases (a consumer that died without recover()) are looked for once a second, not on every lease.
    if (now - this.#lastExpiry >= LEASE_EXPIRY_SWEEP_MS) {
      this.#lastExpiry = now;
      this.#stmts.expireLeases.run(now);
    }
    const rows = this.#stmts.lease.all(token, now + leaseMs, now, max);
    return rows.sort((a, b) => a.available_at - b.available_at).map((r) => ({ message: toMessage(r), token }));
  }

  complete(
    lease: Lease,
    outcome: { status: 'succeeded' | 'failed'; result: Record<string, unknown> },
    followUps: NewMessage[] = [],
    now = Date.now(),
  ): Promise<void> {
    return this.#write(() => {
      const { changes } = this.#stmts.complete.run(outcome.status, JSON.stringify(outcome.result), now, lease.message.id, lease.token);
      // A lease that expired and went to another consumer settles nothing (that one will).
      if (changes === 0) return;
      this.#open--;
      for (const m of followUps) this.#insert(m, now);
    }, false);
  }

  retry(lease: Lease, availableAt: number, error: string, _now = Date.now()): Promise<void> {
    return this.#write(() => {
      this.#stmts.retry.run(availableAt, error, lease.message.id, lease.token);
    }, false);
  }

  deadLetter(lease: Lease, error: string, result?: Record<string, unknown>, followUps: NewMessage[] = [], now = Date.now()): Promise<void> {
    return this.#write(() => {
      const { changes } = this.#stmts.dead.run(error, result === undefined ? null : JSON.stringify(result), now, lease.message.id, lease.token);
      if (changes === 0) return;
      this.#open--;
      for (const m of followUps) this.#insert(m, now);
    }, false);
  }

  async get(id: string): Promise<Message | undefined> {
    const row = this.#stmts.get.get(id);
    return row && toMessage(row);
  }

  async listDead(queue: string, opts: { limit: number; after?: string }): Promise<Message[]> {
    const after = opts.after ?? null;
    return this.#stmts.listDead.all(queue, after, after, opts.limit).map(toMessage);
  }

  redrive(queue: string, ids: string[] | undefined, maxAttempts: number, expiresAt: number, now = Date.now()): Promise<number> {
    return this.#write(() => {
      let n = 0;
      if (ids === undefined) n = this.#stmts.redriveAll.run(maxAttempts, expiresAt, now, queue).changes;
      else for (const id of ids) n += this.#stmts.redriveOne.run(maxAttempts, expiresAt, now, queue, id).changes;
      this.#open += n;
      return n;
    }, true);
  }

  purgeDead(queue: string, ids?: string[]): Promise<number> {
    return this.#write(() => {
      if (ids === undefined) return this.#stmts.purgeAll.run(queue).changes;
      let n = 0;
      for (const id of ids) n += this.#stmts.purgeOne.run(queue, id).changes;
      return n;
    }, true);
  }

  drop(queue: string): Promise<number> {
    return this.#write(() => {
      const rows = this.#stmts.drop.all(queue) as { open: number }[];
      for (const r of rows) if (r.open) this.#open--;
      return rows.length;
    }, true);
  }

  pending(): number {
    return this.#open;
  }

  async nextAvailableAt(): Promise<number | undefined> {
    return this.#stmts.nextAvailable.get()?.t ?? undefined;
  }

  recover(_now = Date.now()): Promise<number> {
    return this.#write(() => this.#stmts.recover.run().changes, false);
  }

  prune(now = Date.now()): Promise<void> {
    return this.#write(() => {
      this.#stmts.pruneDone.run(now - INVOCATION_RETENTION_MS);
      this.#stmts.pruneDead.run(now - DEAD_LETTER_RETENTION_MS);
      this.#stmts.pruneKeys.run(now - IDEMPOTENCY_WINDOW_MS);
    }, false);
  }

  async getMark(name: string): Promise<number | undefined> {
    return this.#stmts.getMark.get(name)?.value;
  }

  setMark(name: string, value: number): Promise<void> {
    return this.#write(() => {
      this.#stmts.setMark.run(name, value);
    }, true);
  }

  deleteMarks(prefix: string): Promise<number> {
    return this.#write(() => this.#stmts.deleteMarks.run(prefix, prefix).changes, true);
  }

  async close(): Promise<void> {
    if (this.#pending.length > 0) this.#flush();
    this.#db.close();
  }
}
