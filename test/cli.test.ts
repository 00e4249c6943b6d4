import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CLI, cleanEnv, eventually, tempDir, testNoLeakedChildren } from './helpers.js';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function nimbus(args: string[], opts: { cwd: string; env?: Record<string, string> }): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: cleanEnv(opts.env) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts `nimbus up --json` and resolves once it printed its URLs. */
function up(
  cwd: string,
  extra: string[] = [],
): Promise<{
  child: ChildProcess;
  info: { gatewayUrl: string; adminUrl: string; tokenFile: string; functions: { name: string; url?: string; example?: { method: string; url: string } }[] };
}> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'up', '--port', '0', '--admin-port', '0', '--warm-pool', '1', '--json', ...extra], { cwd, env: cleanEnv() });
    after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    let err = '';
    child.stderr?.on('data', (d) => {
      err += d;
    });
    child.stdout?.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl !== -1) resolve({ child, info: JSON.parse(out.slice(0, nl)) });
    });
    child.on('exit', (code) => reject(new Error(`nimbus up exited with ${code}: ${err}`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.on('exit', (code) => resolve(code));
  });
}

describe('the CLI, as a user runs it', async () => {
  const cwd = tempDir('nimbus-cli-');
  const { child, info } = await up(cwd);

  test('the first start creates an owner-only admin token in ./.nimbus', () => {
    assert.equal(info.tokenFile, join(cwd, '.nimbus', 'admin-token'));
    assert.equal(statSync(info.tokenFile).mode & 0o777, 0o600);
    assert.match(readFileSync(info.tokenFile, 'utf8'), /^nimbus_admin_\S{20,}\n$/);
  });

  test('a second `nimbus up` on the same data dir says so and exits non-zero', async () => {
    const second = await nimbus(['up', '--port', '0', '--admin-port', '0'], { cwd });
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /NIMBUS_ALREADY_RUNNING/);
    assert.match(second.stderr, /already running/);
  });

  test('init → deploy → invoke → ls → logs → rm', async () => {
    const created = await nimbus(['init', 'hello', '--template', 'typescript'], { cwd });
    assert.equal(created.code, 0, created.stderr);
    assert.ok(existsSync(join(cwd, 'hello', 'nimbus.yaml')));

    const deployed = await nimbus(['deploy', 'hello'], { cwd });
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.match(deployed.stdout, /Deployed hello version 1/);
    assert.match(deployed.stdout, new RegExp(`${info.gatewayUrl}/fn/hello`));

    const again = await nimbus(['deploy', 'hello', '--json'], { cwd });
    assert.equal(again.code, 0);
    assert.equal(JSON.parse(again.stdout).created, false);

    const invoked = await nimbus(['invoke', 'hello', '--path', '/?name=Ada'], { cwd });
    assert.equal(invoked.code, 0, invoked.stderr);
    assert.deepEqual(JSON.parse(invoked.stdout), { message: 'Hello, Ada!', function: 'hello' });

    const listed = await nimbus(['ls', '--json'], { cwd });
    const functions = JSON.parse(listed.stdout) as { name: string; version: number; envKeys: string[] }[];
    assert.deepEqual(
      functions.map((f) => [f.name, f.version]),
      [['hello', 1]],
    );
    assert.deepEqual(functions[0].envKeys, ['GREETING_TARGET']);
    assert.doesNotMatch(listed.stdout, /"world"/, 'env values are not listed');
    const human = await nimbus(['ls'], { cwd });
    assert.match(human.stdout, /^NAME\s+VERSION\s+INSTANCES/m);

    const logs = await eventually(async () => {
      const r = await nimbus(['logs', 'hello'], { cwd });
      return r.stdout.includes('greeting Ada') ? r : undefined;
    });
    assert.equal(logs.code, 0);

    const removed = await nimbus(['rm', 'hello'], { cwd });
    assert.equal(removed.code, 0);
    const gone = await nimbus(['invoke', 'hello'], { cwd });
    assert.equal(gone.code, 4);
    assert.match(gone.stderr, /NIMBUS_FUNCTION_NOT_FOUND/);
  });

  test('logs -f follows new lines as they are written', async () => {
    const deployed = await nimbus(['deploy', 'hello'], { cwd });
    assert.equal(deployed.code, 0, deployed.stderr);
    const follower = spawn(process.execPath, [CLI, 'logs', 'hello', '-f'], { cwd, env: cleanEnv() });
    let out = '';
    follower.stdout.on('data', (d) => {
      out += d;
    });
    await nimbus(['invoke', 'hello', '--path', '/?name=Follower'], { cwd });
    await eventually(() => out.includes('greeting Follower'), 5_000, 'the followed line');
    follower.kill('SIGINT');
    await exited(follower);
  });

  test('errors name the problem and the fix, with meaningful exit codes', async () => {
    const noFolder = await nimbus(['deploy', 'does-not-exist'], { cwd });
    assert.equal(noFolder.code, 2);
    assert.match(noFolder.stderr, /error NIMBUS_INVALID_ARGUMENT: does-not-exist is not a folder/);
    const badFlag = await nimbus(['deploy', '--bogus'], { cwd });
    assert.equal(badFlag.code, 2);
    const badToken = await nimbus(['ls'], { cwd, env: { NIMBUS_TOKEN: 'wrong' } });
    assert.equal(badToken.code, 3);
    assert.match(badToken.stderr, /NIMBUS_AUTH_INVALID/);
    const nowhere = await nimbus(['ls'], { cwd: tempDir() });
    assert.equal(nowhere.code, 3);
    assert.match(nowhere.stderr, /no running platform found/);
    assert.match(nowhere.stderr, /hint: start the platform with `nimbus up`/);
    const unknown = await nimbus(['frobnicate'], { cwd });
    assert.equal(unknown.code, 2);
    const bad = await nimbus(['init', 'Bad_Name'], { cwd });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /NIMBUS_INVALID_NAME/);
  });

  test('SIGTERM drains an in-flight request, stops instances and exits 0', async () => {
    const slow = join(cwd, 'slow');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(slow);
    writeFileSync(join(slow, 'index.js'), 'export default { async fetch() { await new Promise(r => setTimeout(r, 500)); return new Response("finished"); } };');
    assert.equal((await nimbus(['deploy', 'slow'], { cwd })).code, 0);
    const inflight = fetch(`${info.gatewayUrl}/fn/slow`);
    await new Promise((r) => setTimeout(r, 150));
    child.kill('SIGTERM');
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'finished');
    assert.equal(await exited(child), 0);
    assert.ok(!existsSync(join(cwd, '.nimbus', 'runtime.json')), 'the runtime file is removed on stop');
  });
});

describe('npm start equivalent: nimbus up --examples', async () => {
  test('deploys every example and serves it', async () => {
    const cwd = tempDir('nimbus-examples-');
    const { child, info } = await up(cwd, ['--examples']);
    const names = info.functions.map((f) => f.name).sort();
    assert.ok(names.includes('greet') && names.includes('hello-lambda') && names.includes('echo'), names.join());
    for (const f of info.functions) {
      assert.ok(f.url, `example ${f.name} deployed`);
    }
    // The URL printed for each example is the one its source suggests trying, and it answers.
    const netlify = info.functions.find((f) => f.name === 'netlify-v2');
    assert.deepEqual(netlify?.example, { method: 'GET', url: `${info.gatewayUrl}/fn/netlify-v2/travel-guide/paris/france` });
    for (const f of info.functions) {
      if (f.example?.method !== 'GET') continue;
      const res = await fetch(f.example.url);
      await res.arrayBuffer();
      assert.equal(res.status, 200, `${f.name}: GET ${f.example.url}`);
    }
    const res = await fetch(`${info.gatewayUrl}/fn/greet?name=Ada`);
    assert.deepEqual(await res.json(), { message: 'Hello, Ada!' });
    const lambda = await fetch(`${info.gatewayUrl}/fn/hello-lambda/x`);
    assert.equal(((await lambda.json()) as { path: string }).path, '/x');
    const echo = await fetch(`${info.gatewayUrl}/fn/echo`, { method: 'POST', body: 'ping' });
    assert.equal(await echo.text(), 'ping');
    const openfaas = await fetch(`${info.gatewayUrl}/fn/openfaas-node`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
    assert.deepEqual(await openfaas.json(), { status: 'You said: {"a":1}', method: 'POST', path: '/' });
    assert.equal(await (await fetch(`${info.gatewayUrl}/fn/gcf-http?name=Ada`)).text(), 'Hello Ada!');
    assert.deepEqual(await (await fetch(`${info.gatewayUrl}/fn/vercel-node?name=Ada`)).json(), { message: 'Hello Ada!' });
    const get = async (path: string, init?: RequestInit) => (await fetch(`${info.gatewayUrl}/fn/${path}`, init)).text();
    assert.equal(await get('azure-http?name=Ada'), 'Hello, Ada!');
    assert.equal(await get('netlify-v2/travel-guide/paris/france'), 'Travel guide for paris, france');
    assert.equal(await get('openwhisk-web?name=Ada'), '<html><body><h3>hello Ada!</h3></body></html>');
    assert.deepEqual(JSON.parse(await get('knative-http?a=1')), { query: { a: '1' }, method: 'GET' });
    assert.deepEqual(JSON.parse(await get('fn-hello', { method: 'POST', body: '{"name":"Ada"}', headers: { 'content-type': 'application/json' } })), {
      message: 'Hello Ada',
    });
    assert.equal(await get('fission-hello'), 'hello, world! (GET)\n');
    assert.equal(JSON.parse(await get('python-lambda?name=Ada')).message, 'Hello Ada');
    assert.equal(await get('python-flask/hello/Ada'), 'Hello Ada from Flask');
    assert.deepEqual(JSON.parse(await get('process-http/a?b=1')), { hello: 'from a process', path: '/a?b=1' });
    assert.equal(await get('process-stdio', { method: 'POST', body: 'one two three' }), 'POST request with 3 words\n');
    assert.equal(await get('process-bootstrap/x/y'), 'shell bootstrap saw /x/y');
    child.kill('SIGINT');
    assert.equal(await exited(child), 0);
  });
});

testNoLeakedChildren();
