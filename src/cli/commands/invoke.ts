import { readFileSync } from 'node:fs';
import { NimbusError } from '../../shared/errors.js';
import type { Command } from '../command.js';
import { adminRequest, EXIT, errorFrom, findTarget, print, printJson } from '../context.js';

export const invoke: Command = {
  name: 'invoke',
  summary: 'call a function through the gateway and print its response',
  usage: `Usage: nimbus invoke <name> [options]

Sends one request to /fn/<name> and prints the response body. Exits 0 for a
2xx/3xx answer, 1 otherwise. With --async the request goes to /async/<name>
instead: it is queued durably and delivered with retries, and the command
prints the invocation id (see \`nimbus invocation <id>\`).

Options:
  -d, --data <text|@file>  request body (method defaults to POST when given)
  -X, --method <method>    HTTP method (default GET, or POST with --data)
  --path <path>            path after /fn/<name> (default /)
  -H, --header 'K: V'      request header (repeatable)
  -i, --include            print the status line and headers too
  --async                  queue the request; print the invocation id
  --json                   print {status, headers, body} as JSON`,
  options: {
    data: { type: 'string', short: 'd' },
    method: { type: 'string', short: 'X' },
    path: { type: 'string' },
    header: { type: 'string', short: 'H', multiple: true },
    include: { type: 'boolean', short: 'i' },
    async: { type: 'boolean' },
  },
  async run(positionals, values) {
    const [name] = positionals;
    if (!name || positionals.length > 1) throw new NimbusError('NIMBUS_INVALID_ARGUMENT', 'invoke takes exactly one function name, e.g. `nimbus invoke hello`');
    const target = findTarget(values);
    const info = (await (await adminRequest(target, 'GET', '/v1/info')).json()) as { gatewayUrl: string };
    let body: Buffer | undefined;
    if (typeof values.data === 'string') body = values.data.startsWith('@') ? readFileSync(values.data.slice(1)) : Buffer.from(values.data);
    const headers: Record<string, string> = {};
    for (const h of (values.header as string[] | undefined) ?? []) {
      const colon = h.indexOf(':');
      if (colon <= 0) throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `--header takes "Name: value"; got ${JSON.stringify(h)}`);
      headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
    }
    const method = String(values.method ?? (body ? 'POST' : 'GET')).toUpperCase();
    let path = String(values.path ?? '/');
    if (!path.startsWith('/')) path = `/${path}`;
    const route = values.async === true ? 'async' : 'fn';
    let res: Response;
    try {
      res = await fetch(`${info.gatewayUrl}/${route}/${encodeURIComponent(name)}${path}`, { method, headers, body, redirect: 'manual' });
    } catch (err) {
      throw new NimbusError('NIMBUS_PLATFORM_UNREACHABLE', `cannot reach the gateway at ${info.gatewayUrl} (${(err as Error).message})`);
    }
    if (res.status === 404 && res.headers.get('content-type') === 'application/json') {
      const clone = res.clone();
      const text = await clone.text();
      if (text.includes('"NIMBUS_FUNCTION_NOT_FOUND"')) throw await errorFrom(res);
    }
    if (values.async === true) {
      if (res.status !== 202) throw await errorFrom(res);
      const queued = (await res.json()) as { id: string; duplicate: boolean };
      if (values.json === true) printJson(queued);
      else
        print(
          `Queued ${name} as invocation ${queued.id}${queued.duplicate ? ' (already queued with this Idempotency-Key)' : ''}\n  nimbus invocation ${queued.id}`,
        );
      return EXIT.OK;
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    if (values.json === true) {
      printJson({ status: res.status, headers: Object.fromEntries(res.headers), body: bytes.toString('utf8') });
    } else {
      if (values.include === true) {
        process.stdout.write(`HTTP ${res.status} ${res.statusText}\n`);
        for (const [k, v] of res.headers) process.stdout.write(`${k}: ${v}\n`);
        process.stdout.write('\n');
      }
      process.stdout.write(bytes);
      if (bytes.length > 0 && bytes[bytes.length - 1] !== 0x0a && process.stdout.isTTY) process.stdout.write('\n');
    }
    return res.status < 400 ? EXIT.OK : EXIT.FAILED;
  },
};
