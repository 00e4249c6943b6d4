import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually, functionDir, INSTANCE_BASE_ENV, startPlatform, testNoLeakedChildren } from './helpers.js';

type ErrorJson = { error: { code: string; message: string; requestId: string } };

async function expectError(res: Response, status: number, code: string): Promise<ErrorJson['error']> {
  const body = (await res.json()) as ErrorJson;
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${JSON.stringify(body)}`);
  assert.equal(body.error.code, code);
  assert.equal(body.error.requestId, res.headers.get('x-nimbus-request-id'));
  return body.error;
}

/** A function that fails in the way `?fault=` names, and answers normally otherwise. */
const FAULTY = `
const INSTANCE = Math.random().toString(36).slice(2);
export default {
  async fetch(request) {
    const fault = new URL(request.url).searchParams.get('fault');
    if (fault === 'throw') throw new TypeError('boom from the function');
    if (fault === 'exit') { console.log('about to exit'); process.exit(3); }
    if (fault === 'reject') { Promise.reject(new Error('nobody awaits me')); return new Promise(() => {}); }
    if (fault === 'loop') { for (;;) {} }
    if (fault === 'heap') { const keep = []; for (;;) keep.push(new Array(1e5).fill({ x: Math.random() })); }
    if (fault === 'rss') { const keep = []; for (let i = 0; i < 400; i++) { keep.push(Buffer.alloc(1 << 20, 1)); await new Promise(r => setTimeout(r, 2)); } return new Response('survived ' + keep.length); }
    if (fault === 'bad-return') return { not: 'a response' };
    if (fault === 'late-throw') { setTimeout(() => { throw new Error('thrown later'); }, 1); return new Promise(() => {}); }
    return new Response('fine ' + INSTANCE);
  },
};`;

describe('faults fail only their own requests', async () => {
  const t = await startPlatform({ warmPoolSize: 2 });
  await t.deploySource('faulty', FAULTY, 'timeout: 1s\nmemory: 128\nscale:\n  concurrency: 1\n  max: 3\n');
  await t.deploySource('bystander', 'export default { fetch: () => new Response("unaffected") };');

  const fine = async () => {
    const res = await t.gw('/fn/faulty');
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^fine \w+$/);
  };

  const cases: { fault: string; status: number; code: string; message?: RegExp }[] = [
    { fault: 'throw', status: 500, code: 'NIMBUS_FUNCTION_ERROR', message: /TypeError: boom from the function/ },
    { fault: 'exit', status: 502, code: 'NIMBUS_INSTANCE_EXITED', message: /exit code 3/ },
    { fault: 'reject', status: 500, code: 'NIMBUS_UNHANDLED_REJECTION', message: /nobody awaits me/ },
    { fault: 'late-throw', status: 500, code: 'NIMBUS_FUNCTION_ERROR', message: /thrown later/ },
    { fault: 'bad-return', status: 502, code: 'NIMBUS_INVALID_RESPONSE' },
    { fault: 'loop', status: 504, code: 'NIMBUS_FUNCTION_TIMEOUT' },
    { fault: 'heap', status: 502, code: 'NIMBUS_MEMORY_LIMIT' },
    { fault: 'rss', status: 502, code: 'NIMBUS_MEMORY_LIMIT' },
  ];
  for (const c of cases) {
    test(`${c.fault}: ${c.status} ${c.code}, and the next request works`, async () => {
      const error = await expectError(await t.gw(`/fn/faulty?fault=${c.fault}`), c.status, c.code);
      if (c.message) assert.match(error.message, c.message);
      await fine();
    });
  }

  test('a timeout on a shared instance fails only the late request; the others finish', async () => {
    await t.deploySource(
      'shared',
      `const INSTANCE = Math.random().toString(36).slice(2);
      export default { async fetch(request) {
        if (new URL(request.url).searchParams.has('hang')) await new Promise(() => {});
        await new Promise((r) => setTimeout(r, 600));
        return new Response('done ' + INSTANCE);
      } };`,
      'timeout: 1s\nscale:\n  concurrency: 4\n  max: 1\n',
    );
    const hung = t.gw('/fn/shared?hang=1');
    await new Promise((r) => setTimeout(r, 600));
    const slow = t.gw('/fn/shared');
    await expectError(await hung, 504, 'NIMBUS_FUNCTION_TIMEOUT');
    const ok = await slow;
    assert.equal(ok.status, 200);
    const firstPid = (await ok.text()).split(' ')[1];
    // The drained instance is replaced: the next request runs in a new process.
    const next = await t.gw('/fn/shared');
    assert.equal(next.status, 200);
    assert.notEqual((await next.text()).split(' ')[1], firstPid);
  });

  test('a function stuck in a loop does not slow another function', async () => {
    const stuck = t.gw('/fn/faulty?fault=loop');
    const started = Date.now();
    for (let i = 0; i < 5; i++) assert.equal(await (await t.gw('/fn/bystander')).text(), 'unaffected');
    assert.ok(Date.now() - started < 900, 'the bystander answered while the other function was stuck');
    await expectError(await stuck, 504, 'NIMBUS_FUNCTION_TIMEOUT');
  });

  test('the error and the log lines before process.exit reach the logs', async () => {
    const res = await t.gw('/fn/faulty?fault=throw');
    const requestId = res.headers.get('x-nimbus-request-id');
    await res.text();
    const logs = await eventually(async () => {
      const lines = await t.logs('faulty', { requestId: requestId ?? '' });
      return lines.some((l) => l.line.includes('TypeError: boom')) ? lines : undefined;
    });
    assert.ok(logs.every((l) => l.stream === 'stderr'));
    const all = await t.logs('faulty', { limit: '1000' });
    assert.ok(
      all.some((l) => l.line === 'about to exit'),
      'a line logged right before process.exit is kept',
    );
  });

  test('a function that fails to load is refused at deploy with its own error; the previous version keeps serving', async () => {
    const broken = await t.deployRejected(
      functionDir({ 'index.js': 'throw new Error("cannot start: missing config");' }, 'name: broken\n'),
      'NIMBUS_LOAD_FAILED',
    );
    assert.match(broken.message, /cannot start: missing config/);
    assert.equal((await t.admin('GET', '/v1/functions/broken')).status, 404, 'a refused first deploy creates nothing');
    const e2 = await t.deployRejected(functionDir({ 'index.js': 'export const notAHandler = 1;' }, 'name: nohandler\n'), 'NIMBUS_HANDLER_NOT_FOUND');
    assert.match(e2.message, /notAHandler/);

    await t.deploySource('keeps', 'export default { fetch: () => new Response("v1") };');
    const e3 = await t.deployRejected(functionDir({ 'index.js': 'null.boom;' }, 'name: keeps\n'), 'NIMBUS_LOAD_FAILED');
    assert.match(e3.hint, /version 1 keeps serving/);
    assert.equal(await (await t.gw('/fn/keeps')).text(), 'v1');
    assert.equal((await t.functionInfo('keeps')).version, 1);
    await fine();
  });

  test('a function that loads at deploy but fails to load later reports its own error at first invoke', async () => {
    // Loads during the deploy check, throws in every instance started more than a moment later.
    const source = `if (Date.now() > ${Date.now() + 3_000}) throw new Error("credentials expired"); export default { fetch: () => new Response("ok") };`;
    await t.deploySource('expires', source);
    await new Promise((r) => setTimeout(r, 3_100));
    const error = await expectError(await t.gw('/fn/expires'), 502, 'NIMBUS_LOAD_FAILED');
    assert.match(error.message, /credentials expired/);
    await fine();
  });

  test('instances see only their own env and the documented variables', async () => {
    process.env.NIMBUS_TEST_PLATFORM_SECRET = 'must-not-leak';
    await t.deploySource('envcheck', 'export default { fetch: () => Response.json(process.env) };', 'env:\n  MINE: yes\n');
    const env = (await (await t.gw('/fn/envcheck')).json()) as Record<string, string>;
    delete process.env.NIMBUS_TEST_PLATFORM_SECRET;
    assert.equal(env.MINE, 'yes');
    assert.equal(env.NIMBUS_FUNCTION_NAME, 'envcheck');
    assert.equal(env.NIMBUS_TEST_PLATFORM_SECRET, undefined);
    assert.equal(env.NODE_EXTRA_CA_CERTS, undefined);
    assert.deepEqual(Object.keys(env).sort(), [...INSTANCE_BASE_ENV, 'MINE'].sort());
  });

  test('instances cannot read the data dir, write files or start processes', async () => {
    await t.deploySource(
      'sandboxed',
      `import fs from 'node:fs'; import cp from 'node:child_process';
      export default { fetch(request) {
        const tokenFile = new URL(request.url).searchParams.get('token');
        const tries = {
          readToken: () => fs.readFileSync(tokenFile, 'utf8'),
          // Its own private /tmp is writable (test/sandbox); its code is not.
          write: () => fs.writeFileSync('/var/task/nimbus-sandbox-escape', 'x'),
          spawn: () => cp.execSync('id'),
        };
        const out = {};
        for (const [k, f] of Object.entries(tries)) { try { f(); out[k] = 'allowed'; } catch (e) { out[k] = e.code; } }
        return Response.json(out);
      } };`,
    );
    const res = await t.gw(`/fn/sandboxed?token=${encodeURIComponent(t.platform.tokenFile)}`);
    assert.deepEqual(await res.json(), { readToken: 'ERR_ACCESS_DENIED', write: 'ERR_ACCESS_DENIED', spawn: 'ERR_ACCESS_DENIED' });
  });
});

testNoLeakedChildren();
