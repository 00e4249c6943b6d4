import { NimbusError } from '../../shared/errors.js';
import type { Command } from '../command.js';
import { adminRequest, EXIT, findTarget, print, printJson, table } from '../context.js';

const USAGE = `Usage: nimbus secret <set|ls|rm> <function> [NAME]

Secrets reach a function as environment variables (and in the env argument of
the Web-standard style), like env in nimbus.yaml, but their values live only in
the platform's store: never in the bundle, a listing, a log or an error.

  nimbus secret set <function> <NAME>   reads the value from stdin when it is piped
                                        (one trailing newline dropped), else asks for
                                        it without echoing; never from the command line
  nimbus secret ls <function>           names and when each was set, never values
  nimbus secret rm <function> <NAME>

Setting or removing a secret of a deployed function replaces its running
instances, as a deploy does: requests in flight finish with the old value, every
later request sees the new one. A secret may be set before the first deploy.
A name may not also be in the function's env or bindings. docs/security.md`;

interface SecretView {
  name: string;
  updatedAt: string;
}

export const secret: Command = {
  name: 'secret',
  summary: "set, list and remove a function's secrets (values never shown)",
  usage: USAGE,
  options: {},
  async run(positionals, values) {
    const [action, fn, name, ...rest] = positionals;
    const usage = (why: string) => new NimbusError('NIMBUS_INVALID_ARGUMENT', `${why}\n${USAGE}`);
    if (rest.length > 0) throw usage('too many arguments (a secret value is never an argument: pipe it to stdin)');
    const json = values.json === true;
    const target = findTarget(values);
    const base = () => `/v1/functions/${encodeURIComponent(fn)}/secrets`;
    switch (action) {
      case 'set': {
        if (!fn || !name) throw usage('secret set needs a function and a NAME');
        const value = await readValue(name);
        const res = await adminRequest(target, 'PUT', `${base()}/${encodeURIComponent(name)}`, Buffer.from(value, 'utf8'), 'text/plain; charset=utf-8');
        const body = (await res.json()) as { created: boolean; secret: SecretView };
        if (json) printJson(body);
        else print(`${body.created ? 'Set' : 'Updated'} secret ${name} of ${fn}`);
        return EXIT.OK;
      }
      case 'ls': {
        if (!fn || name) throw usage('secret ls needs a function, and only that');
        const { secrets } = (await (await adminRequest(target, 'GET', base())).json()) as { secrets: SecretView[] };
        if (json) printJson({ secrets });
        else if (secrets.length === 0) print(`${fn} has no secrets. Set one with \`nimbus secret set ${fn} <NAME>\`.`);
        else print(table([['NAME', 'UPDATED'], ...secrets.map((s) => [s.name, s.updatedAt.replace('T', ' ').slice(0, 19)])]));
        return EXIT.OK;
      }
      case 'rm': {
        if (!fn || !name) throw usage('secret rm needs a function and a NAME');
        await adminRequest(target, 'DELETE', `${base()}/${encodeURIComponent(name)}`);
        if (json) printJson({ removed: name, function: fn });
        else print(`Removed secret ${name} of ${fn}`);
        return EXIT.OK;
      }
      default:
        throw usage(`unknown secret action ${JSON.stringify(action ?? '')}: use set, ls or rm`);
    }
  },
};

/** The value: all of stdin when piped (minus one trailing newline), else typed at a prompt that does not echo. */
async function readValue(name: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '');
  }
  return promptHidden(`Value for ${name} (not shown): `);
}

/** Reads one line from the terminal with echo off; Ctrl-C or Ctrl-D on an empty line give up. */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (err?: NimbusError) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (text: string) => {
      for (const ch of text) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003' || (ch === '\u0004' && value === '')) return finish(new NimbusError('NIMBUS_INVALID_ARGUMENT', 'no value given; nothing was set'));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
