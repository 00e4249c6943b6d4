import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { cleanEnv, eventually, functionDir, REPO_ROOT, tempDir, testNoLeakedChildren } from './helpers.js';

const NIMBUS = join(REPO_ROOT, 'bin', 'nimbus.js');
const ROUNDS = 10;
const SENDERS = 8;

/** `nimbus up` as its own process on a fixed data dir; resolves with its URLs once it listens. */
async function up(dataDir: string): Promise<{ child: ChildProcess; gatewayUrl: string; adminUrl: string }> {
  const child = spawn(process.execPath, [NIMBUS, 'up', '--port', '0', '--admin-port', '0', '--data-dir', dataDir, '--json'], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve({ child, ...(JSON.parse(out.split('\n')[0]) as { gatewayUrl: string; adminUrl: string }) });
    });
    child.once('exit', (code) => reject(new Error(`nimbus up exited with ${code}: ${stderr}`)));
  });
}

test(`SIGKILL at random moments while clients send async invocations, ${ROUNDS} times: nothing accepted is lost`, async () => {
  // The function reports each event it gets to this sink, which outlives every platform.
  const delivered = new Map<string, number>();
  const sink = createServer((req, res) => {
    const id = decodeURIComponent((req.url ?? '/').slice(1));
    delivered.set(id, (delivered.get(id) ?? 0) + 1);
    res.end('ok');
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
  const dataDir = tempDir('nimbus-durability-');
  const accepted = new Set<string>();
  const kills: number[] = [];

  try {
    for (let round = 0; round <= ROUNDS; round++) {
      const platform = await up(dataDir);
      if (round === 0) {
        const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
        const dir = functionDir(
          {
            'index.js': `export default {
              async fetch(request, env) {
                const id = await request.text();
                const res = await fetch(env.SINK + '/' + encodeURIComponent(id));
                return new Response(res.ok ? 'ok' : 'sink failed', { status: res.ok ? 200 : 503 });
              },
            };`,
          },
          `name: sink\nenv:\n  SINK: ${sinkUrl}\nretries: 10\n`,
        );
        execFileSync(process.execPath, [NIMBUS, 'deploy', dir, '--url', platform.adminUrl, '--token', token], { env: cleanEnv() });
      }
      if (round === ROUNDS) {
        // The last start is not killed: everything accepted must arrive.
        await eventually(() => [...accepted].every((id) => delivered.has(id)), 60_000, 'every accepted invocation to be delivered');
        platform.child.kill('SIGTERM');
        await new Promise((r) => platform.child.once('exit', r));
        break;
      }
      let sending = true;
      let n = 0;
      const senders = Array.from({ length: SENDERS }, async (_, s) => {
        while (sending) {
          const id = `r${round}-s${s}-${n++}`;
          try {
            const res = await fetch(`${platform.gatewayUrl}/async/sink`, { method: 'POST', body: id });
            await res.arrayBuffer();
            if (res.status === 202) accepted.add(id);
          } catch {
            // The platform is gone: this one was never accepted.
          }
        }
      });
      const delay = 200 + Math.floor(Math.random() * 1_300);
      kills.push(delay);
      await new Promise((r) => setTimeout(r, delay));
      const exited = new Promise((r) => platform.child.once('exit', r));
      platform.child.kill('SIGKILL');
      await exited;
      sending = false;
      await Promise.all(senders);
    }
    const lost = [...accepted].filter((id) => !delivered.has(id));
    const duplicates = [...delivered.values()].filter((count) => count > 1).length;
    console.log(
      `durability: ${accepted.size} accepted over ${ROUNDS} kills (after ${kills.join(', ')} ms), ${lost.length} lost, ${duplicates} delivered more than once`,
    );
    assert.ok(accepted.size > ROUNDS * 10, `the clients got events accepted (${accepted.size})`);
    assert.deepEqual(lost, [], 'no accepted invocation is lost');
  } finally {
    sink.close();
  }
});

testNoLeakedChildren();
