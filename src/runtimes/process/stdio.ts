import type { LoadMessage } from '../../runtime/protocol/frames.js';
import type { Invocation, InvocationResult, LoadedFunction } from '../node/invocation.js';
import { headerPairs } from '../node/invocation.js';
import { spawnCommand } from './common.js';

/**
 * One process per request, as the classic OpenFaaS watchdog runs functions: the body
 * on stdin, the response on stdout, the request in Http_* variables. A non-zero exit
 * answers 500 with what the program wrote to stderr.
 */
export function loadStdioProcess(msg: LoadMessage): LoadedFunction {
  return {
    style: 'stdio',
    async invoke(inv: Invocation): Promise<InvocationResult> {
      const body = await inv.readBody();
      const q = inv.head.path.indexOf('?');
      const env: Record<string, string> = {
        Http_Method: inv.head.method,
        Http_Path: q === -1 ? inv.head.path : inv.head.path.slice(0, q),
        Http_Query: q === -1 ? '' : inv.head.path.slice(q + 1),
      };
      for (const [name, value] of headerPairs(inv.head.headers)) {
        env[`Http_${name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => `${dash ? '_' : ''}${c.toUpperCase()}`)}`] = value;
      }
      const child = spawnCommand(msg, env, 'pipe');
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      child.stdout?.on('data', (c: Buffer) => stdout.push(c));
      child.stderr?.on('data', (c: Buffer) => {
        stderr.push(c);
        process.stderr.write(c);
      });
      child.stdin?.on('error', () => {});
      child.stdin?.end(body);
      const code = await new Promise<number | null>((resolve, reject) => {
        child.once('error', reject);
        child.once('close', (c) => resolve(c));
      });
      if (code !== 0) {
        const text = Buffer.concat(stderr).toString('utf8').trim().split('\n').slice(-20).join('\n');
        return { head: { status: 500, headers: [['content-type', 'text/plain; charset=utf-8']] }, body: Buffer.from(`exit code ${code}: ${text}`) };
      }
      return { head: { status: 200, headers: [['content-type', 'text/plain; charset=utf-8']] }, body: Buffer.concat(stdout) };
    },
  };
}
