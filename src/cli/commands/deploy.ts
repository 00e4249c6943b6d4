import { existsSync, statSync } from 'node:fs';
import { NimbusError } from '../../shared/errors.js';
import type { Command, Values } from '../command.js';
import { adminRequest, EXIT, findTarget, print, printJson, withProgress } from '../context.js';

/** Flags that override the manifest, mapped onto its fields. */
function overrides(values: Values): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const num = (flag: string) => {
    const v = values[flag];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `--${flag} must be a number; got ${JSON.stringify(v)}`);
    return n;
  };
  if (values.name !== undefined) o.name = values.name;
  if (values.handler !== undefined) o.handler = values.handler;
  if (values.memory !== undefined) o.memory = num('memory');
  if (values.timeout !== undefined) o.timeout = /^\d+(\.\d+)?$/.test(String(values.timeout)) ? Number(values.timeout) : values.timeout;
  const scale: Record<string, unknown> = {};
  for (const [flag, field] of [
    ['min', 'min'],
    ['max', 'max'],
    ['concurrency', 'concurrency'],
  ] as const)
    if (values[flag] !== undefined) scale[field] = num(flag);
  if (values['idle-timeout'] !== undefined)
    scale.idleTimeout = /^\d+(\.\d+)?$/.test(String(values['idle-timeout'])) ? Number(values['idle-timeout']) : values['idle-timeout'];
  if (Object.keys(scale).length > 0) o.scale = scale;
  const env = values.env as string[] | undefined;
  if (env && env.length > 0) {
    const parsed: Record<string, string> = {};
    for (const pair of env) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `--env takes KEY=VALUE; got ${JSON.stringify(pair)}`);
      parsed[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    o.env = parsed;
  }
  return o;
}

export const deploy: Command = {
  name: 'deploy',
  summary: "bundle a function folder and make it the function's latest version",
  usage: `Usage: nimbus deploy [dir] [options]

Reads dir/nimbus.yaml (flags override it), bundles the handler and its npm
dependencies with esbuild, uploads the bundle, loads it once to check that it
starts and has a handler (printing the handler style it detected), and moves the
function's latest version to it. If the check fails the deploy fails with the
function's own error and the previous version keeps serving. Deploying unchanged
code is a no-op. dir defaults to ".".

Options:
  --name <name>            function name (default: manifest name, then the folder name)
  --handler <file[.export]> entry file, e.g. index.ts or index.handler
  --memory <MB>            memory limit
  --timeout <duration>     e.g. 10 or 10s or 500ms
  --min <n> --max <n>      instance limits;  --concurrency <n>  requests per instance
  --idle-timeout <d>       idle time before an instance exits
  --env KEY=VALUE          environment variable (repeatable; for secret values
                           use "nimbus secret set", which keeps them off the command line)
  --json                   machine-readable result`,
  options: {
    name: { type: 'string' },
    handler: { type: 'string' },
    memory: { type: 'string' },
    timeout: { type: 'string' },
    min: { type: 'string' },
    max: { type: 'string' },
    concurrency: { type: 'string' },
    'idle-timeout': { type: 'string' },
    env: { type: 'string', multiple: true },
  },
  async run(positionals, values) {
    if (positionals.length > 1) throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `deploy takes one folder; got ${positionals.join(' ')}`);
    const dir = positionals[0] ?? '.';
    const json = values.json === true;
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `${dir} is not a folder; pass the folder that holds the function (and its nimbus.yaml)`);
    }
    const target = findTarget(values);
    const started = Date.now();
    // esbuild loads only for the commands that build.
    const { buildFunction } = await import('../../build/bundle.js');
    const built = await withProgress(`building ${dir}`, json, () => buildFunction(dir, overrides(values)));
    const name = built.manifest.name;
    const res = await withProgress(`uploading ${name}`, json, () => adminRequest(target, 'PUT', `/v1/functions/${name}`, built.zip, 'application/zip'));
    const body = (await res.json()) as { created: boolean; style: string; function: { name: string; version: number; url: string } };
    const kind = body.style ? `${body.style} style, ` : '';
    const ms = Date.now() - started;
    if (json) printJson({ ...body, bundleBytes: built.bundleBytes, ms });
    else if (body.created)
      print(`Deployed ${name} version ${body.function.version} (${kind}${formatBytes(built.bundleBytes)}, ${ms} ms)\n  ${body.function.url}`);
    else print(`${name} is unchanged (version ${body.function.version})\n  ${body.function.url}`);
    return EXIT.OK;
  },
};

function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1_048_576 ? `${(n / 1024).toFixed(1)} kB` : `${(n / 1_048_576).toFixed(1)} MB`;
}
