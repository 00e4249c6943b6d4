import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { zipSync } from 'fflate';
import { eventually, functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';
import { filesContaining, runCli, target } from './sandbox-helpers.js';

/** An env value no other string in a data dir or an answer could contain by chance. */
const VALUE = 'env-value-7f3a9c1e5b2d4086';
const enc = (s: string) => new TextEncoder().encode(s);

/** Answers /reveal with what it was given; everything else with "ok" and a log line, never the value. */
const ENVY = `export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname.endsWith('/reveal')) return Response.json({ env: env.API_KEY, process: process.env.API_KEY, mode: env.MODE });
    console.log('handled', url.pathname);
    return new Response('ok');
  },
};`;

describe('env values live only in the store', async () => {
  const t = await startPlatform();
  const dir = functionDir({ 'index.js': ENVY }, `name: envy\nenv:\n  API_KEY: ${VALUE}\n  MODE: plain\n`);
  const cli = (...args: string[]) => runCli([...args, ...target(t.platform)]);

  test('`nimbus deploy` shows env names, not values; the same folder again is no new version', async () => {
    const first = await cli('deploy', dir, '--json');
    assert.equal(first.code, 0, first.stderr);
    const body = JSON.parse(first.stdout) as { created: boolean; function: { version: number; envKeys: string[] } };
    assert.equal(body.created, true);
    assert.deepEqual(body.function.envKeys, ['API_KEY', 'MODE']);
    const again = await cli('deploy', dir);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /envy is unchanged \(version 1\)/);
    for (const out of [first, again]) assert.ok(!`${out.stdout}${out.stderr}`.includes(VALUE));
  });

  test('(i) no file in the bundle store holds the value, and no bundle holds a manifest', () => {
    const bundles = join(t.platform.dataDir, 'bundles');
    assert.deepEqual(filesContaining(bundles, VALUE), []);
    for (const name of readdirSync(bundles)) {
      assert.deepEqual(readdirSync(join(bundles, name)), ['index.mjs'], `bundle ${name} holds only code`);
    }
  });

  test('(iii) the function sees its env values at run time', async () => {
    const res = await t.gw('/fn/envy/reveal');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { env: VALUE, process: VALUE, mode: 'plain' });
  });

  test('(ii) no admin route and no CLI command shows the value', async () => {
    const queued = (await (await t.gw('/async/envy/job', { method: 'POST', body: 'work' })).json()) as { id: string };
    await eventually(async () => {
      const r = (await (await t.admin('GET', `/v1/invocations/${queued.id}`)).json()) as { invocation: { status: string } };
      return r.invocation.status === 'succeeded';
    });
    await eventually(async () => (await t.logs('envy')).some((l) => l.line === 'handled /job'));
    const routes = [
      '/v1/info',
      '/v1/functions',
      '/v1/functions/envy',
      '/v1/functions/envy/logs',
      '/v1/functions/envy/dlq',
      '/v1/functions/envy/secrets',
      `/v1/invocations/${queued.id}`,
      '/v1/kv',
      '/v1/buckets',
      '/v1/topics',
    ];
    for (const route of routes) {
      const res = await t.admin('GET', route);
      const text = await res.text();
      assert.equal(res.status, 200, `${route}: ${text}`);
      assert.ok(!text.includes(VALUE), `${route} shows the value: ${text}`);
    }
    const { function: info } = (await (await t.admin('GET', '/v1/functions/envy')).json()) as { function: { envKeys: string[] } };
    assert.deepEqual(info.envKeys, ['API_KEY', 'MODE']);
    for (const args of [['ls', '--json'], ['ls'], ['logs', 'envy'], ['invocation', queued.id, '--json'], ['dlq', 'ls', 'envy'], ['secret', 'ls', 'envy']]) {
      const out = await cli(...args);
      assert.equal(out.code, 0, `nimbus ${args.join(' ')}: ${out.stderr}`);
      assert.ok(!`${out.stdout}${out.stderr}`.includes(VALUE), `nimbus ${args.join(' ')} shows the value: ${out.stdout}`);
    }
  });

  test('a manifest refused for its env does not quote the values back', async () => {
    const bad = [{ API_KEY: VALUE, HUGE: 'x'.repeat(5_000) }, { API_KEY: [VALUE] }, { 'BAD NAME': VALUE }];
    for (const env of bad) {
      const zip = zipSync({ 'index.mjs': enc(ENVY), 'nimbus.json': enc(JSON.stringify({ env })) });
      const res = await t.admin('PUT', '/v1/functions/refused', zip, { authorization: `Bearer ${t.platform.token}`, 'content-type': 'application/zip' });
      const text = await res.text();
      assert.equal(res.status, 400, text);
      assert.match(text, /NIMBUS_INVALID_MANIFEST/);
      assert.ok(!text.includes(VALUE), `the error quotes the value: ${text}`);
    }
    // Neither do the JSON and YAML parsers' messages, which quote the text around a syntax error.
    const broken = { 'nimbus.json': `{"env": {"API_KEY": ${VALUE}}}`, 'nimbus.yaml': `env:\n  API_KEY: ${VALUE}: x\n` };
    for (const [file, text] of Object.entries(broken)) {
      const zip = zipSync({ 'index.mjs': enc(ENVY), [file]: enc(text) });
      const res = await t.admin('PUT', '/v1/functions/refused', zip, { authorization: `Bearer ${t.platform.token}`, 'content-type': 'application/zip' });
      const body = await res.text();
      assert.equal(res.status, 400, body);
      assert.match(body, new RegExp(`NIMBUS_INVALID_MANIFEST.*${file.replace('.', '\\.')} in the bundle is not valid`));
      // V8 quotes about ten characters either side of the fault: not even those.
      assert.ok(!body.includes(VALUE.slice(0, 10)), `the error quotes the value: ${body}`);
    }
  });
});

testNoLeakedChildren();
