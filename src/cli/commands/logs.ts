import { NimbusError } from '../../shared/errors.js';
import type { Command } from '../command.js';
import { adminRequest, EXIT, findTarget } from '../context.js';

interface LogLine {
  id: number;
  ts: string;
  version: number | null;
  requestId: string | null;
  stream: string;
  line: string;
}

function format(l: LogLine, json: boolean): string {
  if (json) return JSON.stringify(l);
  const rid = l.requestId ? l.requestId.slice(0, 8) : '-'.padEnd(8);
  return `${l.ts.slice(11, 23)} ${rid} ${l.stream === 'stderr' ? 'ERR' : 'OUT'} ${l.line}`;
}

export const logs: Command = {
  name: 'logs',
  summary: "show a function's logs (-f to follow)",
  usage: `Usage: nimbus logs <name> [options]

Prints the function's captured stdout/stderr lines, each with its time, the
first 8 characters of its request id and its stream.

Options:
  -f, --follow            keep printing new lines until Ctrl-C
  -n, --limit <n>         how many recent lines (default 100)
  --request-id <id>       only the lines of one request
  --json                  one JSON object per line`,
  options: {
    follow: { type: 'boolean', short: 'f' },
    limit: { type: 'string', short: 'n' },
    'request-id': { type: 'string' },
  },
  async run(positionals, values) {
    if (positionals.length !== 1) throw new NimbusError('NIMBUS_INVALID_ARGUMENT', 'logs takes exactly one function name, e.g. `nimbus logs hello`');
    const [name] = positionals;
    const json = values.json === true;
    const params = new URLSearchParams({ limit: String(values.limit ?? 100) });
    if (values['request-id']) params.set('requestId', String(values['request-id']));
    if (values.follow) params.set('follow', '1');
    const res = await adminRequest(findTarget(values), 'GET', `/v1/functions/${encodeURIComponent(name)}/logs?${params}`);
    if (!values.follow) {
      const body = (await res.json()) as { logs: LogLine[] };
      for (const l of body.logs) process.stdout.write(`${format(l, json)}\n`);
      return EXIT.OK;
    }
    const decoder = new TextDecoder();
    let partial = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      const lines = (partial + decoder.decode(chunk, { stream: true })).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) process.stdout.write(`${format(JSON.parse(line) as LogLine, json)}\n`);
    }
    return EXIT.OK;
  },
};
