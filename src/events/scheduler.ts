import { Cron } from 'croner';
import { SCHEDULER_MAX_SLEEP_MS } from '../config/defaults.js';
import type { CronTrigger } from '../config/triggers.js';
import type { FunctionSpec } from '../runtime/function-pool.js';
import type { CronSource, EventMeta } from './formats.js';
import type { NewMessage, Queue } from './queue.js';

/** Missed ticks are counted up to this many; beyond it the event says "at least". */
const MAX_COUNTED_MISSES = 1_000;

export interface DueTick {
  /** The tick to deliver: the latest one at or before now. */
  tick: number;
  /** Ticks after the last delivered one and before `tick` that are skipped. */
  missed: number;
}

/**
 * The decision, pure: which tick of a schedule is due at `now` when `last` was the
 * last one handled. Ticks missed while the platform was down are not replayed one by
 * one: only the latest is delivered, and it says how many came before it (as a
 * Kubernetes CronJob starts only the most recent missed run).
 */
export function dueTick(cron: Cron, last: number, now: number): DueTick | undefined {
  const [latest] = cron.previousRuns(1, new Date(now + 1));
  if (!latest || latest.getTime() <= last) return undefined;
  let missed = 0;
  for (let t = cron.nextRun(new Date(last)); t && t.getTime() < latest.getTime() && missed < MAX_COUNTED_MISSES; t = cron.nextRun(t)) missed++;
  return { tick: latest.getTime(), missed };
}

interface Schedule {
  fn: string;
  index: number;
  trigger: CronTrigger;
  cron: Cron;
  /** Where the last handled tick is kept: changes when the schedule does, so an edited schedule starts afresh. */
  mark: string;
  spec: FunctionSpec;
}

/** Prefix of a function's marks in the queue's mark store. */
export const cronMarkPrefix = (fn: string) => `cron:${fn}:`;

/**
 * Runs `triggers.cron`: at each tick of a function's schedule it queues one event
 * (deduplicated by an idempotency key made of the function, the schedule's position
 * and the tick, so a restart between queueing and recording the tick cannot queue it
 * twice), then records the tick as handled. The clock is injected; tests call
 * runDue() after moving it instead of waiting.
 */
export class Scheduler {
  readonly #queue: Queue;
  readonly #now: () => number;
  readonly #onQueued: () => void;
  #schedules: Schedule[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  #stopped = true;
  #wakeAt: number | undefined;

  constructor(queue: Queue, opts: { now: () => number; onQueued: () => void }) {
    this.#queue = queue;
    this.#now = opts.now;
    this.#onQueued = opts.onQueued;
  }

  /** The schedules of these functions replace the current ones; newly seen schedules start from now. */
  setFunctions(specs: Iterable<FunctionSpec>): Promise<void> {
    const next: Schedule[] = [];
    for (const spec of specs) {
      spec.triggers.cron.forEach((trigger, index) => {
        const cron = new Cron(trigger.schedule, { paused: true, timezone: trigger.timezone });
        next.push({ fn: spec.name, index, trigger, cron, mark: `${cronMarkPrefix(spec.name)}${index}:${trigger.schedule}@${trigger.timezone}`, spec });
      });
    }
    this.#schedules = next;
    return this.runDue();
  }

  start(): Promise<void> {
    this.#stopped = false;
    return this.runDue();
  }

  /** When the timer will next run the due ticks (epoch ms on the injected clock), or undefined when stopped. */
  get nextWakeAt(): number | undefined {
    return this.#wakeAt;
  }

  /** Stops the timer and waits for a run in progress, so nothing is queued after it resolves. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#wakeAt = undefined;
    await this.#running;
  }

  /** A removed function's schedules go, then its marks (after any run that could still write one). */
  forget(fn: string): Promise<void> {
    const run = this.#running.then(async () => {
      this.#schedules = this.#schedules.filter((s) => s.fn !== fn);
      await this.#queue.deleteMarks(cronMarkPrefix(fn));
    });
    this.#running = run.catch(() => {});
    return run;
  }

  /** Queues every tick that is due now; runs are serialised. A failed run is logged and the timer armed again. */
  runDue(): Promise<void> {
    const run = this.#running.then(async () => {
      const now = this.#now();
      try {
        await this.#runDue(now);
      } finally {
        this.#arm(now);
      }
    });
    this.#running = run.catch((err: unknown) => console.error('nimbus: scheduler:', err));
    return run;
  }

  async #runDue(now: number): Promise<void> {
    const messages: NewMessage[] = [];
    const marks: [string, number][] = [];
    for (const s of this.#schedules) {
      const last = await this.#queue.getMark(s.mark);
      if (last === undefined) {
        marks.push([s.mark, now]);
        continue;
      }
      const due = dueTick(s.cron, last, now);
      if (!due) continue;
      if (due.missed > 0) {
        const n = due.missed >= MAX_COUNTED_MISSES ? `at least ${due.missed}` : String(due.missed);
        console.error(
          `nimbus: ${s.fn}: schedule "${s.trigger.schedule}" missed ${n} tick${due.missed === 1 ? '' : 's'} while the platform was down; delivering only the latest`,
        );
      }
      const source: CronSource = {
        type: 'cron',
        schedule: s.trigger.schedule,
        timezone: s.trigger.timezone,
        index: s.index,
        ...(s.trigger.timer === undefined ? {} : { timer: s.trigger.timer }),
        scheduledTime: due.tick,
        missed: due.missed,
      };
      const meta: EventMeta = { kind: 'event', fn: s.fn, source };
      messages.push({
        queue: `fn:${s.fn}`,
        meta: meta as unknown as Record<string, unknown>,
        body: Buffer.alloc(0),
        maxAttempts: s.spec.async.retries + 1,
        expiresAt: now + s.spec.async.maxEventAgeMs,
        idempotencyKey: `cron:${s.fn}:${s.index}:${due.tick}`,
      });
      marks.push([s.mark, due.tick]);
    }
    if (messages.length > 0) {
      await this.#queue.enqueue(messages, now);
      this.#onQueued();
    }
    for (const [mark, value] of marks) await this.#queue.setMark(mark, value);
  }

  /** Sleeps until the earliest next tick (at most a minute, so a changed clock is noticed). */
  #arm(now: number): void {
    clearTimeout(this.#timer);
    this.#wakeAt = undefined;
    if (this.#stopped) return;
    let wait = SCHEDULER_MAX_SLEEP_MS;
    for (const s of this.#schedules) {
      const next = s.cron.nextRun(new Date(now));
      if (next) wait = Math.min(wait, Math.max(0, next.getTime() - now));
    }
    this.#wakeAt = now + wait;
    // A failed run is logged by runDue and arms the timer again.
    this.#timer = setTimeout(() => this.runDue().catch(() => {}), wait);
    this.#timer.unref();
  }
}
