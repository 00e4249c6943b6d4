import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Instance } from '../src/runtime/instance.js';
import { DEFAULT_SHAPE, type InstanceLauncher, NodeLauncher, ThreadLauncher } from '../src/runtime/launcher.js';
import type { ResponseHead } from '../src/runtime/protocol/frames.js';
import type { NimbusError } from '../src/shared/errors.js';
import { tempDir, testNoLeakedChildren } from './helpers.js';

const SOURCE = `
import { isMainThread } from 'node:worker_threads';
export default { async fetch(request) {
  const what = new URL(request.url).searchParams.get('do');
  if (what === 'exit') process.exit(3);
  if (what === 'loop') while (true) {}
  return Response.json({ isMainThread, env: process.env.GREETING });
} };`;

const codeRoot = tempDir('nimbus-launcher-');
const codeDir = join(codeRoot, 'fn');
mkdirSync(codeDir);
writeFileSync(join(codeDir, 'index.mjs'), SOURCE);

type Outcome = { head?: ResponseHead; body: string; error?: NimbusError };

/** One request through the instance, as the pool and gateway drive it. */
function call(instance: Instance, query: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { body: '' };
    instance.busy++;
    const stream = instance.invoke(
      {
        requestId: `r-${query}`,
        method: 'GET',
        path: `/?do=${query}`,
        headers: ['host', 'test'],
        deadline: Date.now() + 5_000,
        sourceIp: '127.0.0.1',
        protocol: 'http',
      },
      {
        head: (h) => {
          out.head = h;
        },
        body: (chunk) => {
          out.body += chunk.toString();
        },
        end: () => resolve(out),
        error: (error) => resolve({ ...out, error }),
      },
    );
    instance.endBody(stream);
  });
}

async function loaded(launcher: InstanceLauncher): Promise<Instance> {
  const instance = await launcher.start({ ...DEFAULT_SHAPE, memoryMB: 256 });
  assert.equal(instance.state, 'generic');
  await instance.load({ functionName: 'contract', version: 1, codeDir, entry: 'index.mjs', env: { GREETING: 'hi' }, memoryMB: 256, timeoutMs: 5_000 });
  assert.equal(instance.style, 'workers');
  return instance;
}

const launchers: { isolation: 'process' | 'thread'; make(): InstanceLauncher }[] = [
  { isolation: 'process', make: () => new NodeLauncher({ codeRoot, onLog: () => {} }) },
  { isolation: 'thread', make: () => new ThreadLauncher({ onLog: () => {} }) },
];

// One lifecycle, two hosts: whatever an instance runs in, the platform sees the same thing.
for (const { isolation, make } of launchers) {
  describe(`InstanceLauncher contract: ${isolation}`, () => {
    test('start → load → serve → dispose (idempotent)', async () => {
      const instance = await loaded(make());
      assert.equal(instance.isolation, isolation);
      assert.equal(instance.pid === process.pid, isolation === 'thread');
      const out = await call(instance, 'hello');
      assert.equal(out.head?.status, 200);
      assert.deepEqual(JSON.parse(out.body), { isMainThread: isolation === 'process', env: 'hi' });
      assert.ok(instance.residentMB() > 0, 'memory is measured');
      await Promise.all([instance.dispose(), instance.dispose()]);
      assert.equal(instance.state, 'exited');
      await instance.dispose();
    });

    test('process.exit in the handler fails its request with NIMBUS_INSTANCE_EXITED', async () => {
      const instance = await loaded(make());
      const out = await call(instance, 'exit');
      assert.equal(out.error?.code, 'NIMBUS_INSTANCE_EXITED');
      assert.match(out.error?.message ?? '', /exit code 3/);
      await instance.exited;
      assert.equal(instance.state, 'exited');
    });

    test('kill interrupts an endless loop; the request gets the reason’s error', async () => {
      const instance = await loaded(make());
      const pending = call(instance, 'loop');
      await new Promise((r) => setTimeout(r, 100));
      instance.kill('timeout');
      const out = await pending;
      assert.equal(out.error?.code, 'NIMBUS_FUNCTION_TIMEOUT');
      await instance.exited;
    });
  });
}

testNoLeakedChildren();
