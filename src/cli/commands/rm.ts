import { NimbusError } from '../../shared/errors.js';
import type { Command } from '../command.js';
import { adminRequest, EXIT, findTarget, print, printJson } from '../context.js';

export const rm: Command = {
  name: 'rm',
  summary: 'remove a function, its versions, logs and secrets',
  usage: `Usage: nimbus rm <name> [--json]

Removes the function: new requests get 404, running instances finish their
in-flight requests and exit.`,
  options: {},
  async run(positionals, values) {
    if (positionals.length !== 1) throw new NimbusError('NIMBUS_INVALID_ARGUMENT', 'rm takes exactly one function name, e.g. `nimbus rm hello`');
    const [name] = positionals;
    await adminRequest(findTarget(values), 'DELETE', `/v1/functions/${encodeURIComponent(name)}`);
    if (values.json === true) printJson({ removed: name });
    else print(`Removed ${name}`);
    return EXIT.OK;
  },
};
