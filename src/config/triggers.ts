import { Cron } from 'croner';
import { z } from 'zod';
import { DEFAULT_TOPIC_BATCH_SIZE, MAX_TOPIC_BATCH_SIZE, MAX_TRIGGERS_PER_KIND } from './defaults.js';

/** Names of topics, KV namespaces and buckets: the same rule as function names. */
export const RESOURCE_NAME_PATTERN = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const resourceName = (what: string) =>
  z.string({ invalid_type_error: `${what} must be a name` }).regex(RESOURCE_NAME_PATTERN, `${what} must be 1-63 of a-z, 0-9 and "-", starting with a letter`);

/** A binding is visible to the function as env.<NAME> (Workers) and in the state endpoint's URLs. */
export const BINDING_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Five fields (minute precision), or six with seconds first (Azure's NCRONTAB). */
export function cronProblem(schedule: string, timezone: string): string | undefined {
  const fields = schedule.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) return `a schedule has five fields (minute hour day month weekday) or six with seconds first; "${schedule}" has ${fields}`;
  try {
    new Cron(schedule, { paused: true, timezone }).nextRun(new Date(0));
    return undefined;
  } catch (err) {
    return `"${schedule}" is not a valid schedule: ${(err as Error).message.replace(/^CronPattern: /, '')}`;
  }
}

const cronEntry = z
  .union([z.string(), z.object({ schedule: z.string(), timezone: z.string().default('UTC') }).strict()], {
    errorMap: () => ({ message: 'a cron trigger is a schedule string ("*/5 * * * *") or { schedule, timezone }' }),
  })
  .transform((v) => (typeof v === 'string' ? { schedule: v.trim(), timezone: 'UTC' } : { schedule: v.schedule.trim(), timezone: v.timezone }))
  .superRefine((v, ctx) => {
    if (!validTimeZone(v.timezone)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `timezone "${v.timezone}" is not an IANA time zone (e.g. UTC, Europe/Paris)` });
      return;
    }
    const problem = cronProblem(v.schedule, v.timezone);
    if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
  });

const topicEntry = z
  .union([
    resourceName('topic'),
    z
      .object({
        topic: resourceName('topic'),
        batchSize: z.number().int().min(1).max(MAX_TOPIC_BATCH_SIZE, `batchSize must be at most ${MAX_TOPIC_BATCH_SIZE}`).default(DEFAULT_TOPIC_BATCH_SIZE),
      })
      .strict(),
  ])
  .transform((v) => (typeof v === 'string' ? { topic: v, batchSize: DEFAULT_TOPIC_BATCH_SIZE } : v));

const BUCKET_EVENTS = ['created', 'deleted'] as const;
const bucketEntry = z
  .union([
    resourceName('bucket'),
    z
      .object({
        bucket: resourceName('bucket'),
        events: z
          .array(z.enum(BUCKET_EVENTS, { errorMap: () => ({ message: 'bucket events are "created" and "deleted"' }) }))
          .min(1)
          .default([...BUCKET_EVENTS]),
        prefix: z.string().max(1024).default(''),
      })
      .strict(),
  ])
  .transform((v) => (typeof v === 'string' ? { bucket: v, events: [...BUCKET_EVENTS], prefix: '' } : v));

const many = <T extends z.ZodTypeAny>(entry: T, what: string) =>
  z.array(entry).max(MAX_TRIGGERS_PER_KIND, `at most ${MAX_TRIGGERS_PER_KIND} ${what} triggers per function`).default([]);

/** What makes a function run besides HTTP: schedules, topic messages, object changes. */
export const triggersSchema = z
  .object({
    cron: many(cronEntry, 'cron'),
    topics: many(topicEntry, 'topic'),
    buckets: many(bucketEntry, 'bucket'),
  })
  .strict()
  .default({});

/** env.<NAME>: a KV namespace, a bucket, or a topic to publish to. */
export const bindingsSchema = z
  .record(
    z
      .string()
      .regex(BINDING_NAME_PATTERN, `a binding name must match ${BINDING_NAME_PATTERN}`)
      .refine((n) => !n.startsWith('NIMBUS_'), 'a binding name must not start with NIMBUS_'),
    z.union(
      [
        z.object({ kv: resourceName('kv namespace') }).strict(),
        z.object({ bucket: resourceName('bucket') }).strict(),
        z.object({ topic: resourceName('topic') }).strict(),
      ],
      {
        errorMap: () => ({ message: 'a binding is { kv: <namespace> }, { bucket: <bucket> } or { topic: <topic> }' }),
      },
    ),
  )
  .default({});

export type Triggers = z.output<typeof triggersSchema>;
/** A schedule; `timer` names the Azure app.timer it runs (set at deploy from the code, never in the manifest). */
export type CronTrigger = Triggers['cron'][number] & { timer?: string };
export type TopicTrigger = Triggers['topics'][number];
export type BucketTrigger = Triggers['buckets'][number];
export type Bindings = z.output<typeof bindingsSchema>;
export type Binding = Bindings[string];

/** The kind and target of a binding. */
export function bindingTarget(b: Binding): { kind: 'kv' | 'bucket' | 'topic'; name: string } {
  if ('kv' in b) return { kind: 'kv', name: b.kv };
  if ('bucket' in b) return { kind: 'bucket', name: b.bucket };
  return { kind: 'topic', name: b.topic };
}
