import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import type { LoadMessage } from '../../runtime/protocol/frames.js';
import type { Invocation, InvocationResult, LoadedFunction } from '../node/invocation.js';
import { freePort, raceReady, spawnCommand } from './common.js';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding']);

/**
 * A program that serves HTTP on $PORT (as Knative containers and the OpenFaaS
 * watchdog's http mode expect): started once per instance, requests proxied to it.
 */
export async function loadHttpProcess(msg: LoadMessage): Promise<LoadedFunction> {
  const port = await freePort();
  const child = spawnCommand(msg, { PORT: String(port), K_SERVICE: msg.functionName, K_REVISION: `${msg.functionName}-${msg.version}` }, 'forward');
  await raceReady(child, waitForPort(port), 'listen on $PORT');
  return {
    style: 'http',
    invoke: (inv) => proxy(port, inv),
  };
}

async function waitForPort(port: number): Promise<void> {
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

function proxy(port: number, inv: Invocation): Promise<InvocationResult> {
  return new Promise((resolve, reject) => {
    const headers: [string, string][] = [];
    for (let i = 0; i < inv.head.headers.length; i += 2) headers.push([inv.head.headers[i], inv.head.headers[i + 1]]);
    const req = httpRequest({ host: '127.0.0.1', port, method: inv.head.method, path: inv.head.path, headers: headers.flat() }, (res) => {
      const out: [string, string][] = [];
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        const name = res.rawHeaders[i].toLowerCase();
        if (!HOP_BY_HOP.has(name)) out.push([name, res.rawHeaders[i + 1]]);
      }
      resolve({ head: { status: res.statusCode ?? 502, headers: out }, body: res });
    });
    req.once('error', reject);
    void (async () => {
      for await (const chunk of inv.body) req.write(chunk);
      req.end();
    })().catch(reject);
  });
}
