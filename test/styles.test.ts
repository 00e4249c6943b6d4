import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';

describe('OpenFaaS style (node templates): the documented examples, unchanged', async () => {
  const t = await startPlatform();
  /** Deploys a CommonJS handler.js as the template's function/handler.js. */
  const deploy = (name: string, source: string) =>
    t.deploy(functionDir({ 'handler.js': `"use strict"\n${source}` }, `name: ${name}\nstyle: openfaas\nhandler: handler.js\n`));

  test('success with a JSON body', async () => {
    await deploy(
      'of-json',
      `module.exports = (event, context) => {
        const result = { status: "You said: " + JSON.stringify(event.body) };
        context.succeed(result);
      }`,
    );
    const res = await t.gw('/fn/of-json', { method: 'POST', body: '{"hello":"world"}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(await res.text()), { status: 'You said: {"hello":"world"}' });
  });

  test('a custom status code', async () => {
    await deploy('of-404', 'module.exports = (event, context) => { context.status(404).succeed({ "message": "The record requested was not found." }); }');
    const res = await t.gw('/fn/of-404');
    assert.equal(res.status, 404);
    assert.deepEqual(JSON.parse(await res.text()), { message: 'The record requested was not found.' });
  });

  test('failure with a plain-text body is a 500', async () => {
    await deploy('of-fail', 'module.exports = (event, context) => { context.fail("Unable to process this event."); }');
    const res = await t.gw('/fn/of-fail');
    assert.equal(res.status, 500);
    assert.equal(await res.text(), 'Unable to process this event.');
  });

  test('the optional callback parameter', async () => {
    await deploy('of-cb', 'module.exports = (event, context, callback) => { let err; callback(err, { "result": "message received" }); }');
    assert.deepEqual(JSON.parse(await (await t.gw('/fn/of-cb')).text()), { result: 'message received' });
  });

  test('a redirect with a Location header', async () => {
    await deploy(
      'of-redirect',
      `module.exports = (event, context) => { context.headers({ 'Location': 'https://example.com/' }).status(307).succeed('Page has moved.'); }`,
    );
    const res = await t.gw('/fn/of-redirect', { redirect: 'manual' });
    assert.equal(res.status, 307);
    assert.equal(res.headers.get('location'), 'https://example.com/');
    assert.equal(await res.text(), 'Page has moved.');
  });

  test('an async handler that returns a value; event fields as the template sets them', async () => {
    await deploy(
      'of-event',
      `module.exports = async (event, context) => ({ body: event.body, method: event.method, path: event.path, query: event.query, ua: event.headers['user-agent'] })`,
    );
    const res = await t.gw('/fn/of-event/a/b?x=1&x=2&y=3', { method: 'PUT', body: 'plain text', headers: { 'user-agent': 'test-agent' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8', 'res.send(string) as Express does');
    assert.deepEqual(JSON.parse(await res.text()), { body: 'plain text', method: 'PUT', path: '/a/b', query: { x: ['1', '2'], y: '3' }, ua: 'test-agent' });
    const form = await t.gw('/fn/of-event', { method: 'POST', body: 'a=1&b=two', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.deepEqual(JSON.parse(await form.text()).body, { a: '1', b: 'two' });
  });

  test('a thrown error is a 500 with the error text; a JSON body that does not parse is a 400', async () => {
    await deploy('of-throw', 'module.exports = async () => { throw new Error("kaput"); }');
    const res = await t.gw('/fn/of-throw');
    assert.equal(res.status, 500);
    assert.equal(await res.text(), 'Error: kaput');
    const bad = await t.gw('/fn/of-event', { method: 'POST', body: '{not json', headers: { 'content-type': 'application/json' } });
    assert.equal(bad.status, 400);
  });
});

describe('style selection', async () => {
  const t = await startPlatform();

  test('a bare exported function without style: is refused with a hint to set it', async () => {
    await t.deploySource('bare', 'module.exports = async (a, b) => "hi";');
    const res = await t.gw('/fn/bare');
    assert.equal(res.status, 502);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(error.code, 'NIMBUS_HANDLER_NOT_FOUND');
    assert.match(error.message, /set `style:` in nimbus.yaml/);
  });

  test('style: workers on a module without fetch names what is missing', async () => {
    await t.deploySource('nofetch', 'export const handler = async () => "x";', 'style: workers\n');
    const res = await t.gw('/fn/nofetch');
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(error.code, 'NIMBUS_HANDLER_NOT_FOUND');
    assert.match(error.message, /style workers needs `export default \{ fetch/);
  });

  test('an unknown style is a manifest error listing the styles', async () => {
    await assert.rejects(
      t.deploySource('weird', 'export default { fetch: () => new Response("x") };', 'style: cobol\n'),
      /style must be one of workers, lambda, openfaas/,
    );
  });
});

testNoLeakedChildren();
