import { createHash } from 'node:crypto';
import { Cron } from 'croner';
import type { BufferedRequest, BufferedResponse } from '../gateway/call.js';
import { EVENT_STYLES } from '../gateway/lambda-request.js';
import { judge } from './backoff.js';
import type { Message } from './queue.js';

/** A tick of a function's `triggers.cron` entry. */
export interface CronSource {
  type: 'cron';
  schedule: string;
  timezone: string;
  index: number;
  /** The Azure app.timer this schedule runs (by name), when the code declared timers. */
  timer?: string;
  /** The tick, epoch ms. */
  scheduledTime: number;
  /** Ticks skipped before this one while the platform was down. */
  missed: number;
}

/** A message published to a topic the function subscribes to; the body is the message. */
export interface TopicSource {
  type: 'topic';
  topic: string;
  contentType: string;
  publishedAt: number;
}

export interface ObjectSummary {
  key: string;
  size: number;
  etag: string;
  contentType: string | null;
  uploadedAt: number;
}

/** An object created or deleted in a bucket the function watches. */
export interface BucketSource {
  type: 'bucket';
  bucket: string;
  action: 'created' | 'deleted';
  object: ObjectSummary;
  at: number;
}

export type EventSource = CronSource | TopicSource | BucketSource;

/** A trigger's event, as queued on "fn:<name>". */
export interface EventMeta {
  kind: 'event';
  fn: string;
  source: EventSource;
}

/** What became of one message of a delivery. */
export type Settlement = { ok: true } | { ok: false; final: boolean; error: string; delayMs?: number };

export interface EventDelivery {
  request: BufferedRequest;
  /** One settlement per message, in order, from the function's answer. */
  settle(res: BufferedResponse): Settlement[];
}

/** The fake account and region in Lambda-shaped events (ARNs need them). */
const ACCOUNT = '000000000000';
const REGION = 'local';
const BASE = { sourceIp: '127.0.0.1', protocol: 'HTTP/1.1' };

/** Whether several events can share one invocation: a Workers queue() batch, or an SQS-shaped batch for Lambda. */
export function canBatch(style: string | undefined, source: EventSource['type']): boolean {
  if (style === undefined || source === 'cron') return false;
  if (style === 'workers') return true;
  return source === 'topic' && EVENT_STYLES.has(style);
}

/**
 * How a style receives events: Workers get scheduled() or queue(batch); Azure timer
 * functions get their Timer; Lambda-style handlers (and OpenWhisk, Runtime API
 * programs) get the AWS event shape (EventBridge, SQS, S3); every other style gets a
 * CloudEvent (binary mode) POSTed to "/".
 */
export function eventDelivery(style: string, messages: Message[]): EventDelivery {
  const first = messages[0];
  const source = (first.meta as unknown as EventMeta).source;
  if (messages.length > 1 && !canBatch(style, source.type)) throw new Error(`style ${style} takes ${source.type} events one at a time`);
  if (style === 'workers') return source.type === 'cron' ? scheduled(first, source) : queueBatch(messages);
  if (style === 'azure' && source.type === 'cron') return timer(first, source);
  if (EVENT_STYLES.has(style)) return awsEvent(messages, source);
  return cloudEvent(first, source);
}

/** The ordinary verdict of an HTTP answer, for every message of the delivery. */
function byStatus(n: number, res: BufferedResponse): Settlement[] {
  const verdict = judge({ status: res.head.status });
  const settlement: Settlement =
    verdict === 'succeeded' ? { ok: true } : { ok: false, final: verdict === 'failed', error: `the function answered ${res.head.status}` };
  return Array.from({ length: n }, () => settlement);
}

function head(m: Message, headers: string[], extra: Partial<BufferedRequest['head']> = {}): BufferedRequest['head'] {
  return {
    ...BASE,
    requestId: m.id,
    method: 'POST',
    path: '/',
    headers: [...headers, 'x-nimbus-event-id', m.id, 'x-nimbus-attempt', String(m.attempts)],
    ...extra,
  };
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function scheduled(m: Message, s: CronSource): EventDelivery {
  return {
    request: {
      head: head(m, ['content-type', 'application/json'], { trigger: 'scheduled' }),
      body: json({ cron: s.schedule, scheduledTime: s.scheduledTime }),
    },
    settle: (res) => byStatus(1, res),
  };
}

function timer(m: Message, s: CronSource): EventDelivery {
  const next = new Cron(s.schedule, { paused: true, timezone: s.timezone }).nextRun(new Date(s.scheduledTime));
  const body = { name: s.timer, schedule: s.schedule, scheduledTime: s.scheduledTime, nextTime: next?.getTime(), isPastDue: s.missed > 0, missed: s.missed };
  return { request: { head: head(m, ['content-type', 'application/json'], { trigger: 'timer' }), body: json(body) }, settle: (res) => byStatus(1, res) };
}

/** The R2 event notification body Workers see for a bucket change. */
function r2Notification(s: BucketSource): Record<string, unknown> {
  return {
    account: ACCOUNT,
    bucket: s.bucket,
    object: { key: s.object.key, size: s.object.size, eTag: s.object.etag },
    action: s.action === 'created' ? 'PutObject' : 'DeleteObject',
    eventTime: new Date(s.at).toISOString(),
  };
}

/**
 * The id a consumer sees: a topic message keeps the id its publish returned, the same
 * for every subscriber (as a CloudEvent's id is); other events use their queue id.
 */
function eventId(m: Message): string {
  const id = (m.meta as { messageId?: unknown }).messageId;
  return typeof id === 'string' ? id : m.id;
}

/** Settles by the ids the consumer saw (unique within one function's batch). */
function byEventId(messages: Message[]): Map<string, Message> {
  return new Map(messages.map((m) => [eventId(m), m]));
}

/** The longest retry({ delaySeconds }) honoured: 12 hours, as Cloudflare Queues. */
export const MAX_RETRY_DELAY_S = 43_200;

/** What the Workers shim answers for a queue() batch. */
interface QueueAnswer {
  results: { id: string; retry: boolean; delaySeconds?: number }[];
  error?: string;
}

function queueBatch(messages: Message[]): EventDelivery {
  const source = (messages[0].meta as unknown as EventMeta).source as TopicSource | BucketSource;
  const items = messages.map((m) => {
    const s = (m.meta as unknown as EventMeta).source as TopicSource | BucketSource;
    const body = s.type === 'topic' ? m.body : json(r2Notification(s));
    return {
      id: eventId(m),
      timestamp: s.type === 'topic' ? s.publishedAt : s.at,
      attempts: m.attempts,
      contentType: s.type === 'topic' ? s.contentType : 'application/json',
      body: body.toString('base64'),
    };
  });
  const queue = source.type === 'topic' ? source.topic : source.bucket;
  return {
    request: { head: head(messages[0], ['content-type', 'application/json'], { trigger: 'queue' }), body: json({ queue, messages: items }) },
    settle(res) {
      if (res.head.status !== 200) return byStatus(messages.length, res);
      let answer: QueueAnswer;
      try {
        answer = JSON.parse(res.body.toString('utf8')) as QueueAnswer;
        if (!Array.isArray(answer.results)) throw new Error('no results');
      } catch {
        return messages.map(() => ({ ok: false, final: false, error: 'the queue() answer could not be read' }));
      }
      const byId = new Map(answer.results.map((r) => [r?.id, r]));
      return messages.map((m): Settlement => {
        const r = byId.get(eventId(m));
        if (!r?.retry) return { ok: true };
        const why = answer.error ? `queue() threw: ${answer.error}` : 'queue() asked to retry the message';
        const delay = r.delaySeconds === undefined ? Number.NaN : Number(r.delaySeconds);
        const delayMs = Number.isFinite(delay) && delay >= 0 ? Math.min(delay, MAX_RETRY_DELAY_S) * 1000 : undefined;
        return { ok: false, final: false, error: why, ...(delayMs !== undefined ? { delayMs } : {}) };
      });
    },
  };
}

/** AWS shapes: EventBridge "Scheduled Event", SQS records (with partial batch failures), S3 notifications. */
function awsEvent(messages: Message[], source: EventSource): EventDelivery {
  const first = messages[0];
  let event: unknown;
  if (source.type === 'cron') {
    event = {
      version: '0',
      id: first.id,
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: ACCOUNT,
      time: new Date(source.scheduledTime).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region: REGION,
      resources: [`arn:aws:events:${REGION}:${ACCOUNT}:rule/nimbus-cron-${source.index}`],
      detail: { schedule: source.schedule, timezone: source.timezone, missed: source.missed },
    };
  } else if (source.type === 'topic') {
    event = { Records: messages.map(sqsRecord) };
  } else {
    event = { Records: [s3Record(source)] };
  }
  return {
    request: { head: head(first, ['content-type', 'application/json'], { event: true }), body: json(event) },
    settle(res) {
      if (res.head.status >= 300 || source.type !== 'topic') return byStatus(messages.length, res);
      // SQS partial batch response: only the listed messages failed. An answer Lambda
      // could not read (batchItemFailures not a list of { itemIdentifier }) fails the
      // whole batch, as Lambda does.
      const text = res.body.toString('utf8');
      let result: unknown;
      try {
        result = text.trim() === '' ? null : JSON.parse(text);
      } catch {
        return messages.map(() => ({ ok: true }) as Settlement); // Not JSON: a plain success.
      }
      const failures = (result as { batchItemFailures?: unknown } | null)?.batchItemFailures;
      if (failures === undefined || failures === null) return messages.map(() => ({ ok: true }) as Settlement);
      const ids = byEventId(messages);
      const valid =
        Array.isArray(failures) &&
        failures.every(
          (f) => typeof (f as { itemIdentifier?: unknown })?.itemIdentifier === 'string' && ids.has((f as { itemIdentifier: string }).itemIdentifier),
        );
      if (!valid)
        return messages.map(() => ({
          ok: false,
          final: false,
          error: 'batchItemFailures is malformed or names an unknown messageId: the whole batch is retried',
        }));
      const failed = new Set(failures.map((f) => (f as { itemIdentifier: string }).itemIdentifier));
      return messages.map((m): Settlement => (failed.has(eventId(m)) ? { ok: false, final: false, error: 'reported in batchItemFailures' } : { ok: true }));
    },
  };
}

function sqsRecord(m: Message): Record<string, unknown> {
  const s = (m.meta as unknown as EventMeta).source as TopicSource;
  // SQS bodies are text: a message that is not UTF-8 travels as base64, and says so.
  const text = m.body.toString('utf8');
  const binary = !Buffer.from(text, 'utf8').equals(m.body);
  const body = binary ? m.body.toString('base64') : text;
  const messageAttributes: Record<string, unknown> = { contentType: { stringValue: s.contentType, dataType: 'String' } };
  if (binary) messageAttributes.contentTransferEncoding = { stringValue: 'base64', dataType: 'String' };
  return {
    messageId: eventId(m),
    receiptHandle: m.id,
    body,
    attributes: {
      ApproximateReceiveCount: String(m.attempts),
      SentTimestamp: String(s.publishedAt),
      ApproximateFirstReceiveTimestamp: String(m.enqueuedAt),
    },
    messageAttributes,
    md5OfBody: createHash('md5').update(body).digest('hex'),
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:${REGION}:${ACCOUNT}:${s.topic}`,
    awsRegion: REGION,
  };
}

function s3Record(s: BucketSource): Record<string, unknown> {
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: REGION,
    eventTime: new Date(s.at).toISOString(),
    eventName: s.action === 'created' ? 'ObjectCreated:Put' : 'ObjectRemoved:Delete',
    s3: {
      s3SchemaVersion: '1.0',
      bucket: { name: s.bucket, arn: `arn:aws:s3:::${s.bucket}` },
      object: { key: encodeURIComponent(s.object.key).replace(/%2F/g, '/').replace(/%20/g, '+'), size: s.object.size, eTag: s.object.etag },
    },
  };
}

/** CloudEvents binary mode: attributes in ce-* headers, the data as the body. */
function cloudEvent(m: Message, s: EventSource): EventDelivery {
  let type: string;
  let source: string;
  let time: number;
  let subject: string | undefined;
  let contentType = 'application/json';
  let body: Buffer;
  if (s.type === 'cron') {
    type = 'dev.nimbus.cron.tick';
    source = `/nimbus/cron/${s.index}`;
    time = s.scheduledTime;
    body = json({ schedule: s.schedule, timezone: s.timezone, scheduledTime: new Date(s.scheduledTime).toISOString(), missed: s.missed });
  } else if (s.type === 'topic') {
    type = 'dev.nimbus.topic.message';
    source = `/nimbus/topics/${s.topic}`;
    time = s.publishedAt;
    contentType = s.contentType;
    body = m.body;
  } else {
    type = `dev.nimbus.bucket.object.${s.action}`;
    source = `/nimbus/buckets/${s.bucket}`;
    time = s.at;
    subject = s.object.key;
    body = json({ bucket: s.bucket, ...s.object, uploadedAt: new Date(s.object.uploadedAt).toISOString() });
  }
  const headers = [
    'content-type',
    contentType,
    'ce-specversion',
    '1.0',
    'ce-id',
    eventId(m),
    'ce-source',
    source,
    'ce-type',
    type,
    'ce-time',
    new Date(time).toISOString(),
  ];
  // The HTTP binding percent-encodes space, '"', '%' and anything outside printable ASCII.
  if (subject !== undefined)
    headers.push(
      'ce-subject',
      subject.replace(/[%"]|[^\x21-\x7e]+/g, (c) => encodeURIComponent(c)),
    );
  return { request: { head: head(m, headers), body }, settle: (res) => byStatus(1, res) };
}
