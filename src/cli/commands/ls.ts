import type { Command } from '../command.js';
import { adminRequest, EXIT, findTarget, print, printJson, table } from '../context.js';
import { describeSandbox, type SandboxView } from '../describe-sandbox.js';

interface FunctionView {
  name: string;
  version: number;
  url: string;
  memory: number;
  instances: { ready: number; busy: number };
  updatedAt: string;
}

export const ls: Command = {
  name: 'ls',
  summary: 'list deployed functions',
  usage: `Usage: nimbus ls [--json]

Lists functions with their latest version, running instances, memory and URL.`,
  options: {},
  async run(_positionals, values) {
    const target = findTarget(values);
    const { functions } = (await (await adminRequest(target, 'GET', '/v1/functions')).json()) as { functions: FunctionView[] };
    if (values.json === true) printJson(functions);
    else if (functions.length === 0) print('No functions yet. Deploy one with `nimbus deploy <folder>`.');
    else {
      const rows = [['NAME', 'VERSION', 'INSTANCES', 'MEMORY', 'UPDATED', 'URL']];
      for (const f of functions)
        rows.push([f.name, String(f.version), String(f.instances.ready), `${f.memory} MB`, f.updatedAt.replace('T', ' ').slice(0, 19), f.url]);
      print(table(rows));
    }
    // What isolates the functions, said plainly when it is weaker than it should be.
    const { sandbox } = (await (await adminRequest(target, 'GET', '/v1/info')).json()) as { sandbox?: SandboxView };
    if (sandbox && (sandbox.kind === 'none' || sandbox.reason)) {
      const line = `warning: ${describeSandbox(sandbox)}`;
      if (values.json === true) process.stderr.write(`${line}\n`);
      else print(`\n${line}`);
    }
    return EXIT.OK;
  },
};
