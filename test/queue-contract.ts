import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEAD_LETTER_RETENTION_MS, IDEMPOTENCY_WINDOW_MS, INVOCATION_RETENTION_MS } from '../src/config/defaults.js';
import type { NewMessage, Queue } from '../src/events/queue.js';

/**
 * The behaviour every Queue backend must have (SQLite now, NATS JetStream later).
 * `open()` gives a fresh, empty queue; `reopen(q)` closes it and opens the same storage again.
 */
export function queueContract(name: string, open: () => Promise<Queue>, reopen: (q: Queue) => Promise<Queue>): void {
  const T0 = 1_700_000_000_000;
  const msg = (over: Partial<NewMessage> = {}): NewMessage => ({
    queue: 'fn:a',
    meta: { kind: 'invoke', n: 1 },
    body: Buffer.from('body'),
    maxAttempts: 3,
    expiresAt: T0 + 3_600_000,
    ...over,
  });

  test(`${name}: an enqueued message survives a reopen, body and meta intact`, async () => {
    let q = await open();
    const [{ id, duplicate }] = await q.enqueue([msg({ body: Buffer.from([0, 1, 2, 255]) })], T0);
    assert.equal(duplicate, false);
    q = await reopen(q);
    const m = await q.get(id);
    assert.ok(m);
    assert.deepEqual([m.status, m.attempts, m.queue, m.meta, [...m.body]], ['queued', 0, 'fn:a', { kind: 'invoke', n: 1 }, [0, 1, 2, 255]]);
    assert.equal(q.pending(), 1);
    await q.close();
  });

  test(`${name}: a message keeps the id its producer chose`, async () => {
    const q = await open();
    const id = '0b6c1f4e-8c1d-4a57-9d59-5b0e1f2a3c4d';
    assert.deepEqual(await q.enqueue([msg({ id })], T0), [{ id, duplicate: false }]);
    assert.equal((await q.get(id))?.body.toString(), 'body');
    await q.close();
  });

  test(`${name}: lease takes due messages oldest first, up to max, each an attempt`, async () => {
    const q = await open();
    const [late] = await q.enqueue([msg({ availableAt: T0 + 10_000 })], T0);
    const ids = (await q.enqueue([msg(), msg(), msg()], T0)).map((r) => r.id);
    const first = await q.lease(2, 60_000, T0 + 1);
    assert.deepEqual(
      first.map((l) => l.message.id),
      ids.slice(0, 2),
    );
    assert.ok(first.every((l) => l.message.status === 'running' && l.message.attempts === 1));
    const rest = await q.lease(10, 60_000, T0 + 1);
    assert.deepEqual(
      rest.map((l) => l.message.id),
      [ids[2]],
      'leased messages and future ones are not handed out',
    );
    assert.deepEqual(
      (await q.lease(10, 60_000, T0 + 10_000)).map((l) => l.message.id),
      [late.id],
    );
    assert.equal(await q.nextAvailableAt(), undefined);
    await q.close();
  });

  test(`${name}: complete records the outcome once; a stale lease settles nothing`, async () => {
    const q = await open();
    const [{ id }] = await q.enqueue([msg()], T0);
    const [lease] = await q.lease(1, 1_000, T0);
    // The lease expires and another consumer takes the message.
    const [again] = await q.lease(1, 1_000, T0 + 5_000);
    assert.equal(again.message.id, id);
    assert.equal(again.message.attempts, 2);
    await q.complete(lease, { status: 'succeeded', result: { from: 'stale' } }, [], T0 + 5_001);
    assert.equal((await q.get(id))?.status, 'running');
    await q.complete(again, { status: 'succeeded', result: { from: 'current' } }, [msg({ queue: 'callback' })], T0 + 5_002);
    const m = await q.get(id);
    assert.deepEqual([m?.status, m?.result, m?.completedAt], ['succeeded', { from: 'current' }, T0 + 5_002]);
    assert.equal(q.pending(), 1, 'the follow-up is queued with the outcome');
    await q.close();
  });

  test(`${name}: retry puts a message back for later with the error`, async () => {
    const q = await open();
    const [{ id }] = await q.enqueue([msg()], T0);
    const [lease] = await q.lease(1, 60_000, T0);
    await q.retry(lease, T0 + 2_000, 'boom', T0 + 1);
    assert.deepEqual(await q.lease(1, 60_000, T0 + 1_999), []);
    assert.equal(await q.nextAvailableAt(), T0 + 2_000);
    const [next] = await q.lease(1, 60_000, T0 + 2_000);
    assert.deepEqual([next.message.id, next.message.attempts, next.message.lastError], [id, 2, 'boom']);
    await q.close();
  });

  test(`${name}: dead letters are listed in pages, redriven and purged`, async () => {
    const q = await open();
    const ids = (await q.enqueue([msg(), msg(), msg(), msg({ queue: 'fn:b' })], T0)).map((r) => r.id);
    for (const lease of await q.lease(10, 60_000, T0)) await q.deadLetter(lease, 'gave up', { last: 1 }, [], T0 + 1);
    assert.equal(q.pending(), 0);
    const page1 = await q.listDead('fn:a', { limit: 2 });
    const page2 = await q.listDead('fn:a', { limit: 2, after: page1[1].id });
    assert.deepEqual(
      [...page1, ...page2].map((m) => m.id),
      ids.slice(0, 3),
    );
    assert.equal(page1[0].lastError, 'gave up');
    assert.equal(await q.redrive('fn:a', [ids[0]], 5, T0 + 99_000, T0 + 2), 1);
    const [again] = await q.lease(10, 60_000, T0 + 2);
    assert.deepEqual([again.message.id, again.message.attempts, again.message.maxAttempts, again.message.expiresAt], [ids[0], 1, 5, T0 + 99_000]);
    assert.equal(await q.redrive('fn:a', undefined, 3, T0 + 99_000, T0 + 3), 2);
    assert.equal(await q.purgeDead('fn:b'), 1);
    assert.deepEqual(await q.listDead('fn:b', { limit: 10 }), []);
    await q.close();
  });

  test(`${name}: an idempotency key dedupes within the window, not after it`, async () => {
    const q = await open();
    const [a] = await q.enqueue([msg({ idempotencyKey: 'k' })], T0);
    const [b] = await q.enqueue([msg({ idempotencyKey: 'k' })], T0 + 1_000);
    assert.deepEqual(b, { id: a.id, duplicate: true });
    const [other] = await q.enqueue([msg({ idempotencyKey: 'k', queue: 'fn:b' })], T0 + 1_000);
    assert.equal(other.duplicate, false, 'keys are per queue');
    const [c] = await q.enqueue([msg({ idempotencyKey: 'k' })], T0 + IDEMPOTENCY_WINDOW_MS + 1);
    assert.equal(c.duplicate, false);
    assert.notEqual(c.id, a.id);
    await q.close();
  });

  test(`${name}: recover makes running messages due again; drop and prune delete`, async () => {
    let q = await open();
    const [{ id }] = await q.enqueue([msg()], T0);
    await q.enqueue([msg({ queue: 'fn:gone' })], T0);
    await q.lease(10, 3_600_000, T0);
    q = await reopen(q);
    assert.equal(await q.recover(T0 + 1), 2);
    const leases = await q.lease(10, 60_000, T0 + 1);
    assert.equal(leases.length, 2);
    assert.equal(await q.drop('fn:gone'), 1);
    assert.equal(q.pending(), 1);
    const mine = leases.find((l) => l.message.id === id);
    assert.ok(mine);
    await q.complete(mine, { status: 'failed', result: {} }, [], T0 + 2);
    await q.prune(T0 + 2 + INVOCATION_RETENTION_MS - 1);
    assert.ok(await q.get(id), 'kept within the retention');
    await q.prune(T0 + 3 + INVOCATION_RETENTION_MS);
    assert.equal(await q.get(id), undefined);
    const [dead] = await q.enqueue([msg()], T0);
    await q.deadLetter((await q.lease(1, 60_000, T0))[0], 'x', undefined, [], T0);
    await q.prune(T0 + INVOCATION_RETENTION_MS + 1);
    assert.ok(await q.get(dead.id), 'dead letters are kept longer');
    await q.prune(T0 + DEAD_LETTER_RETENTION_MS + 1);
    assert.equal(await q.get(dead.id), undefined);
    await q.close();
  });

  test(`${name}: marks survive a reopen; deleteMarks removes by prefix only`, async () => {
    let q = await open();
    assert.equal(await q.getMark('cron:a:0:* * * * *@UTC'), undefined);
    await q.setMark('cron:a:0:* * * * *@UTC', T0);
    await q.setMark('cron:a:1:0 * * * *@UTC', T0 + 1);
    await q.setMark('cron:ab:0:0 * * * *@UTC', T0 + 2);
    await q.setMark('cron:a:0:* * * * *@UTC', T0 + 60_000);
    q = await reopen(q);
    assert.equal(await q.getMark('cron:a:0:* * * * *@UTC'), T0 + 60_000);
    assert.equal(await q.deleteMarks('cron:a:'), 2);
    assert.equal(await q.getMark('cron:a:1:0 * * * *@UTC'), undefined);
    assert.equal(await q.getMark('cron:ab:0:0 * * * *@UTC'), T0 + 2, 'another function whose name starts the same keeps its marks');
    await q.close();
  });
}
