import { readFileSync } from 'node:fs';
import { NimbusError } from '../../shared/errors.js';
import type { Command } from '../command.js';
import { adminRequest, EXIT, findTarget, print, printJson } from '../context.js';

const USAGE = `Usage: nimbus publish <topic> [message] [--file path] [--content-type type]

Publishes one message to a topic: every function subscribed to it (triggers.topics
in its nimbus.yaml) gets its own copy. The message is the argument (text/plain, or
application/json when it parses as JSON), or the contents of --file.

  nimbus publish orders '{"id": 42}'
  nimbus publish images --file photo.jpg --content-type image/jpeg`;

export const publish: Command = {
  name: 'publish',
  summary: 'publish a message to a topic (fan-out to every subscriber)',
  usage: USAGE,
  options: { file: { type: 'string' }, 'content-type': { type: 'string' }, 'idempotency-key': { type: 'string' } },
  async run(positionals, values) {
    const [topic, message, ...rest] = positionals;
    if (!topic || rest.length > 0 || (message === undefined) === (values.file === undefined)) {
      throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `publish needs a topic and either a message or --file\n${USAGE}`);
    }
    const body = message !== undefined ? Buffer.from(message) : readFileSync(String(values.file));
    const type =
      values['content-type'] !== undefined
        ? String(values['content-type'])
        : message !== undefined
          ? isJson(message)
            ? 'application/json'
            : 'text/plain'
          : 'application/octet-stream';
    const headers: Record<string, string> = values['idempotency-key'] !== undefined ? { 'idempotency-key': String(values['idempotency-key']) } : {};
    const res = await adminRequest(findTarget(values), 'POST', `/v1/topics/${encodeURIComponent(topic)}/messages`, body, type, headers);
    const out = (await res.json()) as { ids: string[]; subscribers: string[] };
    if (values.json === true) printJson(out);
    else print(`Published ${out.ids[0]} to ${topic} → ${out.subscribers.join(', ')}`);
    return EXIT.OK;
  },
};

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
