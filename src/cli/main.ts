import { parseArgs } from 'node:util';
import { NimbusError, toNimbusError } from '../shared/errors.js';
import { NIMBUS_VERSION } from '../version.js';
import type { Command } from './command.js';
import { bucket } from './commands/bucket.js';
import { deploy } from './commands/deploy.js';
import { dlq } from './commands/dlq.js';
import { init } from './commands/init.js';
import { invocation } from './commands/invocation.js';
import { invoke } from './commands/invoke.js';
import { kv } from './commands/kv.js';
import { logs } from './commands/logs.js';
import { ls } from './commands/ls.js';
import { publish } from './commands/publish.js';
import { rm } from './commands/rm.js';
import { secret } from './commands/secret.js';
import { up } from './commands/up.js';
import { EXIT, exitCodeFor, GLOBAL_OPTIONS } from './context.js';

const COMMANDS: Command[] = [up, init, deploy, invoke, ls, rm, logs, secret, invocation, dlq, publish, kv, bucket];

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `nimbus ${NIMBUS_VERSION}: a self-hosted serverless platform`,
    '',
    'Usage: nimbus <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Global options: --url <admin url>  --token <admin token>  --data-dir <dir>  --json  --help',
    "Run `nimbus help <command>` for a command's options. Docs: docs/cli.md",
  ].join('\n');
}

/** Runs the CLI; resolves with the exit code. */
export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const target = rest[0] && COMMANDS.find((c) => c.name === rest[0]);
    process.stdout.write(`${target ? target.usage : help()}\n`);
    return EXIT.OK;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${NIMBUS_VERSION}\n`);
    return EXIT.OK;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`nimbus: unknown command "${name}"\n\n${help()}\n`);
    return EXIT.USAGE;
  }
  let json = rest.includes('--json');
  try {
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({ args: rest, options: { ...GLOBAL_OPTIONS, ...command.options }, allowPositionals: true, strict: true });
    } catch (err) {
      throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `nimbus ${name}: ${(err as Error).message}`, { hint: `run \`nimbus help ${name}\`` });
    }
    if (parsed.values.help) {
      process.stdout.write(`${command.usage}\n`);
      return EXIT.OK;
    }
    json = parsed.values.json === true;
    return await command.run(parsed.positionals, parsed.values);
  } catch (err) {
    const e = toNimbusError(err);
    if (json) process.stdout.write(`${JSON.stringify(e.toJSON(), null, 2)}\n`);
    else {
      const detail = e.code === 'NIMBUS_INTERNAL' && !(err instanceof NimbusError) ? ` (${(err as Error).stack ?? String(err)})` : '';
      process.stderr.write(`error ${e.code}: ${e.message}${detail}\n`);
      process.stderr.write(`hint: ${e.hint}\n`);
    }
    return exitCodeFor(e);
  }
}
