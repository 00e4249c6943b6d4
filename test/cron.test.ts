import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Cron } from 'croner';
import { dueTick, Scheduler } from '../src/events/scheduler.js';
import { SqliteQueue } from '../src/events/sqlite-queue.js';
import type { FunctionSpec } from '../src/runtime/function-pool.js';
import { eventually, functionDir, startPlatform, tempDir, testNoLeakedChildren } from './helpers.js';

const MIN = 60_000;

describe('dueTick: which tick is due, and how many were missed (pure)', () => {
  const every5 = new Cron('*/5 * * * *', { paused: true, timezone: 'UTC' });
  const T = Date.parse('2026-03-01T10:00:00Z');

  test('nothing is due before the next tick; the tick itself is due at its exact time', () => {
    assert.equal(dueTick(every5, T, T + 4 * MIN), undefined);
    assert.deepEqual(dueTick(every5, T, T + 5 * MIN), { tick: T + 5 * MIN, missed: 0 });
    assert.equal(dueTick(every5, T + 5 * MIN, T + 5 * MIN + 1), undefined, 'a handled tick is not due again');
  });

  test('after an outage only the latest tick is due, with the skipped ones counted', () => {
    assert.deepEqual(dueTick(every5, T, T + 60 * MIN + 30_000), { tick: T + 60 * MIN, missed: 11 });
  });

  test('six fields have seconds; time zones shift the tick', () => {
    const every10s = new Cron('*/10 * * * * *', { paused: true });
    assert.deepEqual(dueTick(every10s, T, T + 25_000), { tick: T + 20_000, missed: 1 });
    const nineParis = new Cron('0 9 * * *', { paused: true, timezone: 'Europe/Paris' });
    // 09:00 in Paris in March (UTC+1) is 08:00 UTC.
    assert.deepEqual(dueTick(nineParis, Date.parse('2026-03-01T07:00:00Z'), Date.parse('2026-03-01T08:30:00Z')), {
      tick: Date.parse('2026-03-01T08:00:00Z'),
      missed: 0,
    });
  });
});

describe('Scheduler: a failing run does not stop the schedules', () => {
  test('the queue fails once; the timer is armed again and the next run queues the tick', async () => {
    const queue = new SqliteQueue(join(tempDir('nimbus-sched-'), 'events.db'));
    const T = Date.parse('2026-03-01T10:00:00Z');
    let now = T;
    let failures = 1;
    const enqueue = queue.enqueue.bind(queue);
    queue.enqueue = (messages, at) => (failures-- > 0 ? Promise.reject(new Error('disk full')) : enqueue(messages, at));
    const scheduler = new Scheduler(queue, { now: () => now, onQueued: () => {} });
    const spec = {
      name: 'f',
      async: { retries: 2, maxEventAgeMs: 60_000 },
      triggers: { cron: [{ schedule: '*/10 * * * * *', timezone: 'UTC' }], topics: [], buckets: [] },
    } as unknown as FunctionSpec;
    await scheduler.start();
    await scheduler.setFunctions([spec]);
    assert.equal(scheduler.nextWakeAt, T + 10_000);
    now = T + 10_000;
    await assert.rejects(scheduler.runDue(), /disk full/);
    assert.equal(scheduler.nextWakeAt, T + 20_000, 'armed again after the failure');
    await scheduler.runDue();
    const [lease] = await queue.lease(10, 60_000, now);
    assert.ok(lease, 'the tick was queued');
    assert.equal(lease.message.queue, 'fn:f');
    assert.equal((lease.message.meta as { source: { scheduledTime: number } }).source.scheduledTime, T + 10_000);
    await scheduler.stop();
    assert.equal(scheduler.nextWakeAt, undefined);
    await queue.close();
  });
});

const WORKER = `
export default {
  async fetch() { return new Response('ok'); },
  async scheduled(controller, env, ctx) {
    console.log('scheduled', controller.cron, new Date(controller.scheduledTime).toISOString(), controller.type);
  },
};`;

const LAMBDA = `
export const handler = async (event) => {
  console.log('event', JSON.stringify(event));
  return { ok: true };
};`;

const OPENFAAS = `
module.exports = async (event, context) => {
  console.log('cloudevent', event.headers['ce-type'], event.headers['ce-source'], JSON.stringify(event.body));
  return context.status(200).succeed('ok');
};`;

const AZURE_TIMER = `
const { app } = require('@azure/functions');
app.timer('every10s', {
  schedule: '*/10 * * * * *',
  handler: async (myTimer, context) => {
    context.log('timer', context.functionName, myTimer.isPastDue, myTimer.scheduleStatus.last);
  },
});`;

describe('schedules: triggers.cron, with an injected clock', async () => {
  // The platform's clock starts at a fixed point and moves only when the test says so.
  const T0 = Date.parse('2026-03-01T10:00:30Z');
  let now = T0;
  const dataDir = tempDir('nimbus-cron-');
  let t = await startPlatform({ dataDir, events: { now: () => now, retryBaseMs: 20, retryMaxMs: 50 } });
  await t.deploy(functionDir({ 'index.js': WORKER }, 'name: tick-workers\ntriggers:\n  cron: ["*/5 * * * *"]\n'));
  await t.deploy(functionDir({ 'index.js': LAMBDA }, 'name: tick-lambda\ntriggers:\n  cron:\n    - schedule: "0 9 * * *"\n      timezone: Europe/Paris\n'));
  await t.deploy(functionDir({ 'handler.js': OPENFAAS }, 'name: tick-http\nstyle: openfaas\nhandler: handler.js\ntriggers:\n  cron: ["*/5 * * * *"]\n'));
  const lines = async (name: string, prefix: string) => (await t.logs(name)).map((l) => l.line).filter((l) => l.startsWith(prefix));
  const waitLines = (name: string, prefix: string, n: number) =>
    eventually(
      async () => {
        const l = await lines(name, prefix);
        return l.length >= n ? l : undefined;
      },
      10_000,
      `${n} "${prefix}" lines from ${name}`,
    );

  test('a Workers function gets scheduled(controller) once per tick', async () => {
    now = Date.parse('2026-03-01T10:05:00Z');
    await t.platform.events.scheduler.runDue();
    await t.platform.events.scheduler.runDue();
    const got = await waitLines('tick-workers', 'scheduled', 1);
    assert.deepEqual(got, ['scheduled */5 * * * * 2026-03-01T10:05:00.000Z scheduled']);
    // Running again at the same time queues nothing new.
    await t.platform.events.scheduler.runDue();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await lines('tick-workers', 'scheduled')).length, 1);
  });

  test('an HTTP-style function gets a CloudEvent', async () => {
    const [line] = await waitLines('tick-http', 'cloudevent', 1);
    assert.match(line, /^cloudevent dev\.nimbus\.cron\.tick \/nimbus\/cron\/0 /);
    const data = JSON.parse(line.replace(/^cloudevent \S+ \S+ /, '')) as Record<string, unknown>;
    const body = typeof data === 'string' ? JSON.parse(data) : data;
    assert.deepEqual(body, { schedule: '*/5 * * * *', timezone: 'UTC', scheduledTime: '2026-03-01T10:05:00.000Z', missed: 0 });
  });

  test('a Lambda function gets an EventBridge Scheduled Event at 09:00 Paris time', async () => {
    now = Date.parse('2026-03-02T08:00:10Z');
    await t.platform.events.scheduler.runDue();
    const [line] = await waitLines('tick-lambda', 'event', 1);
    const event = JSON.parse(line.slice('event '.length)) as Record<string, unknown>;
    assert.equal(event['detail-type'], 'Scheduled Event');
    assert.equal(event.source, 'aws.events');
    assert.equal(event.time, '2026-03-02T08:00:00Z');
    assert.deepEqual(event.detail, { schedule: '0 9 * * *', timezone: 'Europe/Paris', missed: 0 });
  });

  test('Azure app.timer: the schedule in the code (six fields, seconds) is used', async () => {
    const res = await t.deploy(functionDir({ 'index.js': AZURE_TIMER }, 'name: tick-azure\n'));
    const info = (await (await t.admin('GET', '/v1/functions/tick-azure')).json()) as { function: { style: string; triggers: { cron: unknown[] } } };
    assert.equal(res.created, true);
    assert.equal(info.function.style, 'azure');
    assert.deepEqual(info.function.triggers.cron, [{ schedule: '*/10 * * * * *', timezone: 'UTC', timer: 'every10s' }]);
    now += 10_000;
    await t.platform.events.scheduler.runDue();
    const [line] = await waitLines('tick-azure', 'timer', 1);
    assert.match(line, /^timer every10s false \d{4}-\d\d-\d\dT/);
  });

  test('Azure: two app.timer with the same schedule each run; a manifest schedule matching no timer is refused', async () => {
    const code = `
const { app } = require('@azure/functions');
for (const name of ['first', 'second']) {
  app.timer(name, { schedule: '0 */5 * * * *', handler: async (t, context) => context.log('timer', context.functionName, t.scheduleStatus.next) });
}`;
    await t.deploy(functionDir({ 'index.js': code }, 'name: tick-azure2\n'));
    now += 5 * MIN;
    await t.platform.events.scheduler.runDue();
    const got = await waitLines('tick-azure2', 'timer', 2);
    assert.deepEqual(got.map((l) => l.split(' ')[1]).sort(), ['first', 'second']);
    const next = Date.parse(got[0].split(' ')[2]);
    assert.equal(next % (5 * MIN), 0, 'scheduleStatus.next is the following tick');
    assert.ok(next > now);
    const err = await t.deployRejected(functionDir({ 'index.js': code }, 'name: tick-azure3\ntriggers:\n  cron: ["0 0 * * *"]\n'), 'NIMBUS_HANDLER_NOT_FOUND');
    assert.match(err.message, /matches none of the code's timers \(first: 0 \*\/5/);
    const topicOnly = await t.deployRejected(
      functionDir({ 'index.js': code }, 'name: tick-azure4\ntriggers:\n  topics: [orders]\n'),
      'NIMBUS_HANDLER_NOT_FOUND',
    );
    assert.match(topicOnly.message, /app\.http/);
  });

  test('a schedule the code cannot take is refused at deploy', async () => {
    const err = await t.deployRejected(
      functionDir({ 'index.js': 'export default { fetch() { return new Response("x"); } };' }, 'name: no-scheduled\ntriggers:\n  cron: ["* * * * *"]\n'),
      'NIMBUS_HANDLER_NOT_FOUND',
    );
    assert.match(err.message, /triggers\.cron.*scheduled\(controller, env, ctx\)/);
    const bad = await t.admin('GET', '/v1/functions/no-scheduled');
    assert.equal(bad.status, 404);
  });

  test('removing a function stops its schedule', async () => {
    await t.admin('DELETE', '/v1/functions/tick-http');
    const before = (await lines('tick-workers', 'scheduled')).length;
    now += 5 * MIN;
    await t.platform.events.scheduler.runDue();
    await waitLines('tick-workers', 'scheduled', before + 1);
    assert.equal((await t.admin('GET', '/v1/functions/tick-http/logs')).status, 404);
  });

  // Last: the restarted platform lives only as long as this test (startPlatform's after-hook).
  test('ticks missed while the platform was down: only the latest is delivered, once', async () => {
    const before = (await lines('tick-workers', 'scheduled')).length;
    await t.platform.stop(2_000);
    now = Date.parse('2026-03-02T09:01:00Z'); // a day of 5-minute ticks went by
    t = await startPlatform({ dataDir, events: { now: () => now, retryBaseMs: 20, retryMaxMs: 50 } });
    const got = await waitLines('tick-workers', 'scheduled', before + 1);
    assert.equal(got.at(-1), 'scheduled */5 * * * * 2026-03-02T09:00:00.000Z scheduled');
    await t.platform.events.scheduler.runDue();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await lines('tick-workers', 'scheduled')).length, before + 1, 'the catch-up tick is delivered once');
  });

  testNoLeakedChildren();
});
