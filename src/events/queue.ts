/**
 * The durable queue behind every asynchronous source (async invokes, callbacks, and
 * later cron ticks, topics and storage events). SQLite is the embedded backend; a NATS
 * JetStream backend must pass the same contract suite (test/queue-contract.ts).
 *
 * Delivery is at least once: a consumer leases messages, and a lease that is neither
 * completed, retried nor dead-lettered (the consumer crashed) makes the message
 * available again, by expiry or by recover() when the only consumer restarts.
 */

/** queued: waiting (first attempt or a retry); running: leased; then one of the three final states. */
export type MessageStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'dead';

export interface NewMessage {
  /** The message's id, if the producer picks it (a UUID, so that another record can point at it); else the queue makes one. */
  id?: string;
  /** Which queue: "fn:<name>" for a function's events, "callback" for result callbacks. */
  queue: string;
  /** Opaque to the queue: what the consumer needs besides the body (JSON-serialisable). */
  meta: Record<string, unknown>;
  body: Buffer;
  /** Attempts in all (retries + 1). */
  maxAttempts: number;
  /** After this time (epoch ms) the message is not attempted again: it goes to the dead letters. */
  expiresAt: number;
  /** Deduplicates within the idempotency window: a second enqueue returns the first message. */
  idempotencyKey?: string;
  /** First attempt not before this time (default: now). */
  availableAt?: number;
}

export interface Message {
  id: string;
  queue: string;
  meta: Record<string, unknown>;
  body: Buffer;
  status: MessageStatus;
  /** Attempts started so far (a lease is an attempt). */
  attempts: number;
  maxAttempts: number;
  enqueuedAt: number;
  availableAt: number;
  expiresAt: number;
  completedAt: number | null;
  /** Why the last attempt failed, or why the message is dead. */
  lastError: string | null;
  /** The final outcome, as the consumer recorded it (JSON). */
  result: Record<string, unknown> | null;
}

export interface Lease {
  message: Message;
  /** Proves the lease is still this consumer's when it settles the message. */
  token: string;
}

export interface EnqueueResult {
  id: string;
  /** True when an earlier message had the same idempotency key: nothing new was queued. */
  duplicate: boolean;
}

export interface Queue {
  /** Stores the messages; resolves only once they are durable. */
  enqueue(messages: NewMessage[], now?: number): Promise<EnqueueResult[]>;
  /** Takes up to `max` messages that are due, oldest first, each counting as an attempt. */
  lease(max: number, leaseMs: number, now?: number): Promise<Lease[]>;
  /** Final outcome; `followUps` are enqueued in the same commit (e.g. the result's callback). */
  complete(lease: Lease, outcome: { status: 'succeeded' | 'failed'; result: Record<string, unknown> }, followUps?: NewMessage[], now?: number): Promise<void>;
  /** Back to queued until `availableAt`. */
  retry(lease: Lease, availableAt: number, error: string, now?: number): Promise<void>;
  /** To the dead letters, with the reason; `followUps` as for complete(). */
  deadLetter(lease: Lease, error: string, result?: Record<string, unknown>, followUps?: NewMessage[], now?: number): Promise<void>;
  get(id: string): Promise<Message | undefined>;
  /** Dead letters of one queue, oldest first, after the cursor (an id from the previous page). */
  listDead(queue: string, opts: { limit: number; after?: string }): Promise<Message[]>;
  /** Dead letters (all of the queue's, or those ids) back to queued with fresh attempts and age. */
  redrive(queue: string, ids: string[] | undefined, maxAttempts: number, expiresAt: number, now?: number): Promise<number>;
  /** Deletes the queue's dead letters (all, or those ids). */
  purgeDead(queue: string, ids?: string[]): Promise<number>;
  /** Deletes every message of a queue (a removed function). */
  drop(queue: string): Promise<number>;
  /** Messages not yet final (queued or running), for the 429 limit. */
  pending(): number;
  /** Earliest availableAt of a queued message, or undefined. */
  nextAvailableAt(): Promise<number | undefined>;
  /** Makes every running message queued again: for the only consumer, at its start. */
  recover(now?: number): Promise<number>;
  /** A small durable number by name (the scheduler's last handled tick per schedule). */
  getMark(name: string): Promise<number | undefined>;
  setMark(name: string, value: number): Promise<void>;
  /** Deletes the marks whose names start with the prefix (a removed function's). */
  deleteMarks(prefix: string): Promise<number>;
  /** Deletes final messages older than their retention. */
  prune(now?: number): Promise<void>;
  close(): Promise<void>;
}
