import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
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

/**
 * Processes a platform on `dataDir` left behind: its sandboxes (their bubblewrap command
 * lines name the data dir) and any slirp4netns whose sandbox is gone.
 */
function leftovers(dataDir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0');
      if (cmd.some((arg) => arg.startsWith(dataDir))) out.push(`${entry} ${cmd[0]}`);
      if (cmd[0].endsWith('slirp4netns') && !existsSync(`/proc/${cmd.at(-3)}`)) out.push(`${entry} ${cmd.join(' ')}`);
    } catch {
      // gone
    }
  }
  return out;
}

/** Every key of a KV namespace, through the admin API. */
async function kvKeys(adminUrl: string, token: string, ns: string): Promise<Set<string>> {
  const keys = new Set<string>();
  let cursor = '';
  for (;;) {
    const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
    const res = await fetch(`${adminUrl}/v1/kv/${ns}/keys${query}`, { headers: { authorization: `Bearer ${token}` } });
    const page = (await res.json()) as { keys: { name: string }[]; cursor?: string; complete: boolean };
    assert.equal(res.status, 200, JSON.stringify(page));
    for (const k of page.keys) keys.add(k.name);
    if (page.complete || !page.cursor) return keys;
    cursor = page.cursor;
  }
}

test(`SIGKILL at random moments while clients send async invocations, ${ROUNDS} times: nothing accepted is lost`, async () => {
  // The function records each event it gets in a KV namespace, which outlives every platform
  // (a sandboxed function cannot reach a sink on the host's loopback).
  let delivered = new Set<string>();
  const dataDir = tempDir('nimbus-durability-');
  const accepted = new Set<string>();
  const kills: number[] = [];

  const platforms: ChildProcess[] = [];
  try {
    for (let round = 0; round <= ROUNDS; round++) {
      const platform = await up(dataDir);
      platforms.push(platform.child);
      const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
      if (round === 0) {
        const dir = functionDir(
          {
            'index.js': `export default {
              async fetch(request, env) {
                await env.SEEN.put(await request.text(), '1');
                return new Response('ok');
              },
            };`,
          },
          'name: sink\nbindings:\n  SEEN: { kv: seen }\nretries: 10\n',
        );
        execFileSync(process.execPath, [NIMBUS, 'deploy', dir, '--url', platform.adminUrl, '--token', token], { env: cleanEnv() });
      }
      if (round === ROUNDS) {
        // The last start is not killed: everything accepted must arrive.
        await eventually(
          async () => {
            delivered = await kvKeys(platform.adminUrl, token, 'seen');
            return [...accepted].every((id) => delivered.has(id));
          },
          60_000,
          'every accepted invocation to be delivered',
        );
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
    console.log(`durability: ${accepted.size} accepted over ${ROUNDS} kills (after ${kills.join(', ')} ms), ${lost.length} lost`);
    assert.ok(accepted.size > ROUNDS * 10, `the clients got events accepted (${accepted.size})`);
    assert.deepEqual(lost, [], 'no accepted invocation is lost');
    // Ten platforms died by SIGKILL: none of their sandboxes, nor the slirp4netns of one, outlives them.
    await eventually(() => leftovers(dataDir).length === 0 || undefined, 5_000, 'every sandbox of a killed platform to be gone');
  } finally {
    for (const p of platforms) if (p.exitCode === null) p.kill('SIGKILL');
  }
});

testNoLeakedChildren();
