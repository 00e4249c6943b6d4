import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { CLI, cleanEnv, eventually, functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';

/** Workers queue(): logs each batch; a message whose body asks for it is retried on its first attempt. */
const WORKERS_CONSUMER = `
export default {
  async fetch() { return new Response('ok'); },
  async queue(batch, env, ctx) {
    console.log('batch', batch.queue, batch.messages.length);
    for (const m of batch.messages) {
      console.log('msg', JSON.stringify({ body: m.body, attempts: m.attempts, id: m.id, isDate: m.timestamp instanceof Date }));
      if (m.body && m.body.retryOnce && m.attempts === 1) m.retry();
      else m.ack();
    }
  },
};`;

/** Lambda: SQS-shaped batches; a message whose body says fail is reported in batchItemFailures. */
const LAMBDA_CONSUMER = `
export const handler = async (event) => {
  console.log('records', event.Records.length, event.Records[0].eventSource);
  const failures = [];
  for (const r of event.Records) {
    console.log('record', r.body, r.attributes.ApproximateReceiveCount);
    console.log('sqsid', r.messageId);
    if (r.body.includes('fail') && r.attributes.ApproximateReceiveCount === '1') failures.push({ itemIdentifier: r.messageId });
  }
  return { batchItemFailures: failures };
};`;

/** OpenFaaS (an HTTP style): each message is a CloudEvent. */
const HTTP_CONSUMER = `
module.exports = async (event, context) => {
  console.log('cloudevent-id', event.headers['ce-id']);
  console.log('ce', event.headers['ce-type'], event.headers['ce-source'], event.headers['content-type'], typeof event.body === 'string' ? event.body : JSON.stringify(event.body));
  return context.status(200).succeed('ok');
};`;

/** A producer: env.ORDERS.send() / sendBatch() from a request. */
const PRODUCER = `
export default {
  async fetch(request, env) {
    const n = Number(new URL(request.url).searchParams.get('n') ?? 1);
    if (n === 1) await env.ORDERS.send({ from: 'binding', n: 1 });
    else await env.ORDERS.sendBatch(Array.from({ length: n }, (_, i) => ({ body: 'text ' + i })));
    return new Response('sent ' + n);
  },
};`;

describe('topics: publish, fan-out to every subscriber, batches, ack/retry', async () => {
  const t = await startPlatform({ events: { retryBaseMs: 20, retryMaxMs: 50 } });
  await t.deploy(functionDir({ 'index.js': WORKERS_CONSUMER }, 'name: sub-workers\ntriggers:\n  topics: [orders]\n'));
  await t.deploy(functionDir({ 'index.js': LAMBDA_CONSUMER }, 'name: sub-lambda\ntriggers:\n  topics:\n    - topic: orders\n      batchSize: 3\n'));
  await t.deploy(functionDir({ 'handler.js': HTTP_CONSUMER }, 'name: sub-http\nstyle: openfaas\nhandler: handler.js\ntriggers:\n  topics: [orders]\n'));
  await t.deploy(functionDir({ 'index.js': PRODUCER }, 'name: producer\nbindings:\n  ORDERS:\n    topic: orders\n'));

  const lines = async (name: string, prefix: string) => (await t.logs(name, { limit: '1000' })).map((l) => l.line).filter((l) => l.startsWith(prefix));
  const waitLines = (name: string, prefix: string, n: number) =>
    eventually(
      async () => {
        const l = await lines(name, prefix);
        return l.length >= n ? l : undefined;
      },
      10_000,
      `${n} "${prefix}" lines from ${name}`,
    );
  const publishBatch = async (messages: unknown[]) => {
    const res = await t.admin('POST', '/v1/topics/orders/batch', JSON.stringify({ messages }), {
      authorization: `Bearer ${t.platform.token}`,
      'content-type': 'application/json',
    });
    const body = (await res.json()) as { ids: string[]; subscribers: string[] };
    assert.equal(res.status, 202, JSON.stringify(body));
    return body;
  };

  test('one publish reaches every subscriber; a batch arrives as one queue() call', async () => {
    const out = await publishBatch([{ body: { n: 1 } }, { body: { n: 2 } }, { body: { n: 3 } }, { body: { n: 4 } }, { body: { n: 5 } }]);
    assert.equal(out.ids.length, 5);
    assert.deepEqual(out.subscribers, ['sub-http', 'sub-lambda', 'sub-workers']);
    const msgs = await waitLines('sub-workers', 'msg', 5);
    assert.deepEqual(msgs.map((l) => JSON.parse(l.slice(4)).body.n).sort(), [1, 2, 3, 4, 5]);
    assert.ok(msgs.every((l) => JSON.parse(l.slice(4)).isDate));
    const batches = await lines('sub-workers', 'batch');
    assert.ok(batches.length < 5, `5 messages published together arrive in fewer than 5 batches (got ${batches.join(' | ')})`);
    assert.ok(batches.every((b) => b.startsWith('batch orders ')));
    // Lambda: SQS-shaped records, at most batchSize (3) per invocation.
    const records = await waitLines('sub-lambda', 'record ', 5);
    assert.equal(records.length, 5);
    const sizes = (await lines('sub-lambda', 'records ')).map((l) => Number(l.split(' ')[1]));
    assert.ok(
      sizes.every((n) => n >= 1 && n <= 3),
      `batches of at most 3: ${sizes}`,
    );
    assert.ok((await lines('sub-lambda', 'records ')).every((l) => l.endsWith('aws:sqs')));
    // HTTP styles: one CloudEvent each.
    const ces = await waitLines('sub-http', 'ce', 5);
    assert.ok(ces.every((l) => l.startsWith('ce dev.nimbus.topic.message /nimbus/topics/orders application/json')));
    // Every subscriber sees the ids the publish answered with.
    const ids = [...out.ids].sort();
    assert.deepEqual(msgs.map((l) => JSON.parse(l.slice(4)).id).sort(), ids, 'Workers message.id');
    assert.deepEqual((await waitLines('sub-lambda', 'sqsid', 5)).map((l) => l.slice(6)).sort(), ids, 'SQS messageId');
    assert.deepEqual((await waitLines('sub-http', 'cloudevent-id', 5)).map((l) => l.slice(14)).sort(), ids, 'CloudEvent id');
  });

  test('a repeated publish with the same Idempotency-Key answers with the first ids and delivers nothing new', async () => {
    const send = async () => {
      const res = await t.admin('POST', '/v1/topics/orders/messages', '{"once": true}', {
        authorization: `Bearer ${t.platform.token}`,
        'content-type': 'application/json',
        'idempotency-key': 'order-77',
      });
      assert.equal(res.status, 202);
      return ((await res.json()) as { ids: string[] }).ids;
    };
    const first = await send();
    assert.deepEqual(await send(), first);
    await waitLines('sub-workers', 'msg', 1);
    await eventually(async () => (await lines('sub-workers', 'msg')).some((l) => l.includes('"once":true')) || undefined);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await lines('sub-workers', 'msg')).filter((l) => l.includes('"once":true')).length, 1);
  });

  test('retry() redelivers only that message; batchItemFailures likewise', async () => {
    const before = {
      workers: (await lines('sub-workers', 'msg')).length,
      lambda: (await lines('sub-lambda', 'record ')).length,
    };
    await publishBatch([{ body: { retryOnce: true, tag: 'r' } }, { body: { tag: 'plain' } }, { body: 'please fail once' }]);
    const msgs = await waitLines('sub-workers', 'msg', before.workers + 4);
    const mine = msgs.slice(before.workers).map((l) => JSON.parse(l.slice(4)) as { body: { tag?: string } | string; attempts: number });
    const retried = mine.filter((m) => typeof m.body === 'object' && m.body.tag === 'r').map((m) => m.attempts);
    assert.deepEqual(retried, [1, 2], 'the retried message came back once, as attempt 2');
    assert.deepEqual(
      mine.filter((m) => typeof m.body === 'object' && m.body.tag === 'plain').map((m) => m.attempts),
      [1],
      'the acknowledged one did not',
    );
    const records = (await waitLines('sub-lambda', 'record ', before.lambda + 4)).slice(before.lambda);
    assert.deepEqual(
      records.filter((r) => r.includes('fail once')).map((r) => r.split(' ').at(-1)),
      ['1', '2'],
    );
    assert.equal(records.filter((r) => r.includes('plain')).length, 1);
  });

  test('functions publish through their binding: env.ORDERS.send() and sendBatch()', async () => {
    const before = (await lines('sub-workers', 'msg')).length;
    assert.equal(await (await t.gw('/fn/producer?n=1')).text(), 'sent 1');
    assert.equal(await (await t.gw('/fn/producer?n=3')).text(), 'sent 3');
    const msgs = (await waitLines('sub-workers', 'msg', before + 4)).slice(before).map((l) => JSON.parse(l.slice(4)).body);
    assert.deepEqual(msgs.map((b) => JSON.stringify(b)).sort(), ['"text 0"', '"text 1"', '"text 2"', '{"from":"binding","n":1}']);
  });

  test('the CLI publishes; a topic nobody subscribes to is refused, not dropped', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, ...args, '--url', t.platform.adminUrl, '--token', t.platform.token], { env: cleanEnv() });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
      });
    const ok = await run(['publish', 'orders', '{"cli": true}']);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /^Published \S+ to orders → sub-http, sub-lambda, sub-workers/);
    await eventually(async () => (await lines('sub-workers', 'msg')).some((l) => l.includes('"cli":true')) || undefined);
    const none = await run(['publish', 'nobody-listens', 'x']);
    assert.equal(none.code, 4);
    assert.match(none.err, /NIMBUS_TOPIC_NOT_FOUND/);
    const res = await t.admin('POST', '/v1/topics/nobody-listens/messages', 'x');
    assert.equal(res.status, 404);
    const big = await t.admin('POST', '/v1/topics/orders/messages', Buffer.alloc(1024 * 1024 + 1));
    assert.equal(big.status, 413);
    const bad = await t.admin('POST', '/v1/topics/orders/batch', '{"messages": []}');
    assert.equal(bad.status, 400);
    const list = (await (await t.admin('GET', '/v1/topics')).json()) as { topics: { name: string; subscribers: string[] }[] };
    assert.deepEqual(list.topics, [{ name: 'orders', subscribers: ['sub-http', 'sub-lambda', 'sub-workers'] }]);
  });

  test('an answer that cannot be read retries the whole batch; a bad retry delay is an error', async () => {
    // Lambda: batchItemFailures naming an id that is not in the batch (SQS fails the batch then too).
    const oddLambda = `
export const handler = async (event) => {
  for (const r of event.Records) console.log('odd', r.body, r.attributes.ApproximateReceiveCount);
  return event.Records[0].attributes.ApproximateReceiveCount === '1' ? { batchItemFailures: [{ itemIdentifier: 'not-in-this-batch' }] } : {};
};`;
    const oddWorkers = `
export default {
  async fetch() { return new Response('ok'); },
  async queue(batch) {
    for (const m of batch.messages) {
      console.log('odd', m.body, m.attempts);
      if (m.attempts === 1) {
        try { m.retry({ delaySeconds: -5 }); } catch (err) { console.log('refused', err.message); throw err; }
      }
    }
  },
};`;
    await t.deploy(functionDir({ 'index.js': oddLambda }, 'name: odd-lambda\ntriggers:\n  topics: [odd]\n'));
    await t.deploy(functionDir({ 'index.js': oddWorkers }, 'name: odd-workers\ntriggers:\n  topics: [odd]\n'));
    const res = await t.admin('POST', '/v1/topics/odd/messages', 'm1', { authorization: `Bearer ${t.platform.token}`, 'content-type': 'text/plain' });
    assert.equal(res.status, 202);
    assert.deepEqual(await waitLines('odd-lambda', 'odd', 2), ['odd m1 1', 'odd m1 2']);
    assert.deepEqual(await waitLines('odd-workers', 'odd', 2), ['odd m1 1', 'odd m1 2']);
    assert.deepEqual(await lines('odd-workers', 'refused'), ['refused retry({ delaySeconds }) takes 0 to 43200 seconds (12 hours); got -5']);
  });

  test('a consumer without queue() is refused at deploy', async () => {
    const err = await t.deployRejected(
      functionDir({ 'index.js': 'export default { fetch() { return new Response("x"); } };' }, 'name: no-queue\ntriggers:\n  topics: [orders]\n'),
      'NIMBUS_HANDLER_NOT_FOUND',
    );
    assert.match(err.message, /queue\(batch, env, ctx\)/);
  });

  testNoLeakedChildren();
});
