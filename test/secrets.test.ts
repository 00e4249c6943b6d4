import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildFunction } from '../src/build/bundle.js';
import { MAX_SECRET_VALUE_BYTES, MAX_SECRETS_PER_FUNCTION } from '../src/config/defaults.js';
import { eventually, functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';
import { filesContaining, runCli, target } from './sandbox-helpers.js';

const VALUE = 'secret-value-b81f2e6a09c34d57';
const NEW_VALUE = 'secret-value-rotated-5e0d13c7';

/** /reveal answers with what the instance sees; everything else "ok", logging the path but never the value. */
const REVEAL = `const INSTANCE = Math.random().toString(36).slice(2);
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname.endsWith('/reveal')) return Response.json({ env: env.DB_PASSWORD ?? null, process: process.env.DB_PASSWORD ?? null, pid: INSTANCE });
    console.log('handled', url.pathname);
    return new Response('ok');
  },
};`;

type ErrorBody = { error: { code: string; message: string; hint: string } };

describe('secrets', async () => {
  const t = await startPlatform();
  await t.deploySource('vault', REVEAL, 'env:\n  MODE: plain\n');
  const cli = (args: string[], input?: string) => runCli([...args, ...target(t.platform)], { input });
  const reveal = async (name = 'vault') => (await (await t.gw(`/fn/${name}/reveal`)).json()) as { env: string | null; process: string | null; pid: number };
  const put = (fn: string, name: string, body: string | Uint8Array) =>
    t.admin('PUT', `/v1/functions/${fn}/secrets/${name}`, body, { authorization: `Bearer ${t.platform.token}`, 'content-type': 'text/plain' });
  const expectError = async (res: Response, status: number, code: string) => {
    const text = await res.text();
    assert.equal(res.status, status, text);
    assert.equal((JSON.parse(text) as ErrorBody).error.code, code);
    assert.ok(!text.includes(VALUE) && !text.includes(NEW_VALUE), `the error quotes a value: ${text}`);
    return (JSON.parse(text) as ErrorBody).error;
  };

  test('`nimbus secret set` reads the value from stdin; running instances are replaced and see it at once', async () => {
    const before = await reveal();
    assert.equal(before.env, null);
    const set = await cli(['secret', 'set', 'vault', 'DB_PASSWORD'], `${VALUE}\n`);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout.trim(), 'Set secret DB_PASSWORD of vault');
    const after = await reveal();
    assert.deepEqual({ env: after.env, process: after.process }, { env: VALUE, process: VALUE }, 'one trailing newline is dropped');
    assert.notEqual(after.pid, before.pid, 'a fresh instance serves the request');
  });

  test('listings show names and update times, never values', async () => {
    const res = await t.admin('GET', '/v1/functions/vault/secrets');
    const body = (await res.json()) as { secrets: { name: string; updatedAt: string }[] };
    assert.equal(body.secrets.length, 1);
    assert.deepEqual(Object.keys(body.secrets[0]).sort(), ['name', 'updatedAt']);
    assert.equal(body.secrets[0].name, 'DB_PASSWORD');
    assert.ok(Math.abs(Date.parse(body.secrets[0].updatedAt) - Date.now()) < 60_000);
    const human = await cli(['secret', 'ls', 'vault']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^NAME {9}UPDATED\nDB_PASSWORD {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n$/);
    const json = await cli(['secret', 'ls', 'vault', '--json']);
    assert.deepEqual((JSON.parse(json.stdout) as typeof body).secrets, body.secrets);
  });

  test('the value appears nowhere but in the store: no admin route, CLI output, log, invocation record or other file', async () => {
    const queued = (await (await t.gw('/async/vault/job', { method: 'POST' })).json()) as { id: string };
    await eventually(async () => {
      const r = (await (await t.admin('GET', `/v1/invocations/${queued.id}`)).json()) as { invocation: { status: string } };
      return r.invocation.status === 'succeeded';
    });
    await eventually(async () => (await t.logs('vault')).some((l) => l.line === 'handled /job'));
    t.platform.logs.flush();
    for (const route of ['/v1/functions', '/v1/functions/vault', '/v1/functions/vault/logs', '/v1/functions/vault/secrets', `/v1/invocations/${queued.id}`]) {
      const text = await (await t.admin('GET', route)).text();
      assert.ok(!text.includes(VALUE), `${route} shows the value`);
    }
    for (const args of [
      ['ls', '--json'],
      ['logs', 'vault'],
      ['invocation', queued.id, '--json'],
      ['secret', 'ls', 'vault', '--json'],
    ]) {
      const out = await cli(args);
      assert.equal(out.code, 0, out.stderr);
      assert.ok(!`${out.stdout}${out.stderr}`.includes(VALUE), `nimbus ${args.join(' ')} shows the value`);
    }
    const holders = filesContaining(t.platform.dataDir, VALUE).filter((f) => !/^nimbus\.db(-wal|-shm)?$/.test(f));
    assert.deepEqual(holders, [], 'only nimbus.db holds the value');
  });

  test('setting it again replaces the value (200, created false); `nimbus secret rm` removes it', async () => {
    const res = await put('vault', 'DB_PASSWORD', NEW_VALUE);
    const body = (await res.json()) as { created: boolean; secret: { name: string } };
    assert.equal(res.status, 200);
    assert.deepEqual({ created: body.created, name: body.secret.name }, { created: false, name: 'DB_PASSWORD' });
    assert.equal((await reveal()).env, NEW_VALUE);
    const rm = await cli(['secret', 'rm', 'vault', 'DB_PASSWORD']);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal((await reveal()).env, null);
    assert.deepEqual(((await (await t.admin('GET', '/v1/functions/vault/secrets')).json()) as { secrets: unknown[] }).secrets, []);
    const again = await cli(['secret', 'rm', 'vault', 'DB_PASSWORD']);
    assert.equal(again.code, 4, 'not found');
    assert.match(again.stderr, /NIMBUS_SECRET_NOT_FOUND/);
  });

  test('a name is an env variable, a binding or a secret, never two of them', async () => {
    await expectError(await put('vault', 'MODE', VALUE), 409, 'NIMBUS_SECRET_CONFLICT');
    assert.equal((await put('vault', 'TOKEN', VALUE)).status, 201);
    const dir = functionDir({ 'index.js': REVEAL }, 'name: vault\nenv:\n  TOKEN: from-the-manifest\n');
    const res = await t.admin('PUT', '/v1/functions/vault', (await buildFunction(dir)).zip, {
      authorization: `Bearer ${t.platform.token}`,
      'content-type': 'application/zip',
    });
    const error = await expectError(res, 409, 'NIMBUS_SECRET_CONFLICT');
    assert.match(error.message, /TOKEN/);
    assert.equal((await t.functionInfo('vault')).version, 1, 'the deploy made no version');
  });

  test('bad names and values are refused with a code, never quoting the value', async () => {
    await expectError(await put('vault', '1ABC', VALUE), 400, 'NIMBUS_INVALID_SECRET');
    await expectError(await put('vault', 'NIMBUS_TOKEN', VALUE), 400, 'NIMBUS_INVALID_SECRET');
    await expectError(await put('vault', 'EMPTY', ''), 400, 'NIMBUS_INVALID_SECRET');
    await expectError(await put('vault', 'NUL', `${VALUE}\0`), 400, 'NIMBUS_INVALID_SECRET');
    await expectError(await put('vault', 'BINARY', Uint8Array.of(0xff, 0xfe, 0x41)), 400, 'NIMBUS_INVALID_SECRET');
    await expectError(await put('vault', 'HUGE', 'x'.repeat(MAX_SECRET_VALUE_BYTES + 1)), 413, 'NIMBUS_SECRET_TOO_LARGE');
    assert.equal((await put('vault', 'LARGEST', 'x'.repeat(MAX_SECRET_VALUE_BYTES))).status, 201);
    await expectError(await t.admin('POST', '/v1/functions/vault/secrets/TOKEN'), 405, 'NIMBUS_METHOD_NOT_ALLOWED');
    const names = ((await (await t.admin('GET', '/v1/functions/vault/secrets')).json()) as { secrets: { name: string }[] }).secrets.map((s) => s.name);
    assert.deepEqual(names, ['LARGEST', 'TOKEN']);
  });

  test('the CLI never takes a value from its arguments', async () => {
    const out = await cli(['secret', 'set', 'vault', 'ARGV', VALUE]);
    assert.equal(out.code, 2);
    assert.match(out.stderr, /NIMBUS_INVALID_ARGUMENT/);
    assert.ok(!t.platform.store.listSecrets('vault').some((s) => s.name === 'ARGV'));
  });

  test("a secret set before the function's first deploy is there for its load check", async () => {
    assert.equal((await put('early', 'DB_PASSWORD', VALUE)).status, 201);
    // Throws at import time without the secret: the deploy's load check would fail.
    await t.deploySource('early', `if (!process.env.DB_PASSWORD) throw new Error('no DB_PASSWORD');\n${REVEAL}`);
    assert.equal((await reveal('early')).env, VALUE);
  });

  test('at most MAX_SECRETS_PER_FUNCTION per function', async () => {
    for (let i = 0; i < MAX_SECRETS_PER_FUNCTION; i++) assert.equal((await put('many', `S${i}`, 'v')).status, 201);
    const error = await expectError(await put('many', 'ONE_MORE', 'v'), 400, 'NIMBUS_INVALID_SECRET');
    assert.match(error.message, new RegExp(`${MAX_SECRETS_PER_FUNCTION} secrets`));
    assert.equal((await put('many', 'S0', 'replaced')).status, 200, 'replacing one is fine');
  });

  test('removing the function removes its secrets', async () => {
    assert.equal((await t.admin('DELETE', '/v1/functions/early')).status, 204);
    assert.deepEqual(((await (await t.admin('GET', '/v1/functions/early/secrets')).json()) as { secrets: unknown[] }).secrets, []);
  });
});

testNoLeakedChildren();
