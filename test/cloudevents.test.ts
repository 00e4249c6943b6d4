import assert from 'node:assert/strict';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CloudEvent, HTTP } from 'cloudevents';
import { eventually, functionDir, REPO_ROOT, startPlatform, testNoLeakedChildren } from './helpers.js';

// The Knative Functions Node "cloudevents" template, unchanged but for the reply's
// contents: it replies with a CloudEvent made by the cloudevents package itself.
const KNATIVE = `const { CloudEvent } = require('cloudevents');

const handle = async (context, event) => {
  context.log.info('received', event.type, event.id);
  return new CloudEvent({
    source: 'function.eventViewer',
    type: 'echo.reply',
    data: { received: event.data, from: event.source, mode: context.contentType === 'application/cloudevents+json' ? 'structured' : 'binary' },
  });
};

module.exports = { handle };
`;

// A Cloud Functions CloudEvent function (functions-framework), from Google's example.
const GCF = `const functions = require('@google-cloud/functions-framework');

functions.cloudEvent('helloCloudEvent', (cloudEvent) => {
  console.log('id=' + cloudEvent.id + ' type=' + cloudEvent.type + ' data=' + JSON.stringify(cloudEvent.data));
});
`;

/** Sends a message made by the cloudevents package; parses the reply with it too. */
async function send(url: string, message: { headers: Record<string, unknown>; body: unknown }): Promise<Response> {
  return fetch(url, { method: 'POST', headers: message.headers as Record<string, string>, body: message.body as string });
}

describe('CloudEvents over HTTP, sent and read with the cloudevents package', async () => {
  const t = await startPlatform();
  // The function's own node_modules holds cloudevents, as a real project's would.
  const knative = functionDir({ 'index.js': KNATIVE, 'package.json': '{"dependencies":{"cloudevents":"^10"}}' }, 'name: ce-knative\n');
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(knative, 'node_modules'));
  await t.deploy(knative);
  await t.deploy(functionDir({ 'index.js': GCF }, 'name: ce-gcf\nhandler: index.helloCloudEvent\n'));

  const event = new CloudEvent({ source: 'urn:test:sender', type: 'com.example.order.created', subject: 'order-7', data: { order: 7, items: ['a', 'b'] } });

  for (const mode of ['binary', 'structured'] as const) {
    test(`${mode} mode: a Knative function receives the event and replies with an event`, async () => {
      const res = await send(`${t.platform.gatewayUrl}/fn/ce-knative`, mode === 'binary' ? HTTP.binary(event) : HTTP.structured(event));
      assert.equal(res.status, 200);
      const reply = HTTP.toEvent({ headers: Object.fromEntries(res.headers), body: await res.text() }) as CloudEvent<Record<string, unknown>>;
      assert.equal(reply.type, 'echo.reply');
      assert.equal(reply.source, 'function.eventViewer');
      assert.equal(reply.specversion, '1.0');
      assert.deepEqual(reply.data, { received: { order: 7, items: ['a', 'b'] }, from: 'urn:test:sender', mode });
    });

    test(`${mode} mode: a Cloud Functions CloudEvent function receives it and answers 204`, async () => {
      const res = await send(`${t.platform.gatewayUrl}/fn/ce-gcf`, mode === 'binary' ? HTTP.binary(event) : HTTP.structured(event));
      assert.equal(res.status, 204);
      const requestId = res.headers.get('x-nimbus-request-id') ?? '';
      const lines = await eventually(async () => {
        const logs = await t.logs('ce-gcf', { requestId });
        return logs.length > 0 ? logs : undefined;
      });
      assert.equal(lines[0].line, `id=${event.id} type=com.example.order.created data={"order":7,"items":["a","b"]}`);
    });
  }

  test('a request that is not a CloudEvent gets a 400 that says what to send', async () => {
    const res = await t.gw('/fn/ce-gcf', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /send ce-\* headers \(binary mode\) or application\/cloudevents\+json \(structured mode\)/);
  });
});

testNoLeakedChildren();
