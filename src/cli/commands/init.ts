import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NimbusError } from '../../shared/errors.js';
import type { Command } from '../command.js';
import { EXIT, print, printJson } from '../context.js';

const TEMPLATES_DIR = fileURLToPath(new URL('../../../../templates/', import.meta.url));

function templates(): string[] {
  return readdirSync(TEMPLATES_DIR).sort();
}

export const init: Command = {
  name: 'init',
  summary: 'scaffold a new function folder from a template',
  usage: `Usage: nimbus init <name> [--template <t>] [--dir <folder>]

Creates <folder> (default ./<name>) with nimbus.yaml and a handler that
\`nimbus deploy <folder>\` deploys as it is.

Options:
  --template <t>   typescript (default), javascript or lambda
  --dir <folder>   where to create it (default ./<name>)`,
  options: { template: { type: 'string', short: 't' }, dir: { type: 'string' } },
  async run(positionals, values) {
    if (positionals.length !== 1) throw new NimbusError('NIMBUS_INVALID_ARGUMENT', 'init takes exactly one function name, e.g. `nimbus init hello`');
    // The manifest module brings zod: loaded only when this command runs.
    const { validateFunctionName } = await import('../../config/manifest.js');
    const name = validateFunctionName(positionals[0]);
    const template = String(values.template ?? 'typescript');
    if (!templates().includes(template)) {
      throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `unknown template "${template}"; choose one of: ${templates().join(', ')}`);
    }
    const dir = resolve(String(values.dir ?? name));
    if (existsSync(dir) && readdirSync(dir).length > 0) {
      throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `${dir} already exists and is not empty`, { hint: 'pick another name or pass --dir' });
    }
    mkdirSync(dir, { recursive: true });
    const files: string[] = [];
    for (const file of readdirSync(join(TEMPLATES_DIR, template))) {
      const text = readFileSync(join(TEMPLATES_DIR, template, file), 'utf8').replaceAll('{{name}}', name);
      writeFileSync(join(dir, file), text);
      files.push(file);
    }
    if (values.json === true) printJson({ name, template, dir, files });
    else {
      print(`Created ${dir} (${template}): ${files.join(', ')}`);
      print(`Next: nimbus deploy ${values.dir ?? name} && nimbus invoke ${name}`);
    }
    return EXIT.OK;
  },
};
