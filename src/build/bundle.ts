import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Message, type Plugin, stop } from 'esbuild';
import { zipSync } from 'fflate';
import { parse as parseYaml } from 'yaml';
import { MANIFEST_FILES, PYTHON_DEFAULT_FILES, PYTHON_EXTENSIONS, resolveHandler, SOURCE_EXTENSIONS } from '../config/handler.js';
import { type Manifest, parseManifest } from '../config/manifest.js';
import { NimbusError } from '../shared/errors.js';
import { collectFiles } from './pack.js';

/** The manifest a built bundle carries at its root. */
export const BUNDLE_MANIFEST = 'nimbus.json';
export const BUNDLE_ENTRY = 'index.mjs';

/**
 * Platform SDKs whose imports resolve to Nimbus's own modules at build time, so code
 * written for those platforms (and package.json files that list them) deploys as is.
 */
const SDK_SHIMS: Record<string, string> = {
  '@google-cloud/functions-framework': fileURLToPath(new URL('../sdk/functions-framework.js', import.meta.url)),
  '@azure/functions': fileURLToPath(new URL('../sdk/azure-functions.js', import.meta.url)),
  '@fnproject/fdk': fileURLToPath(new URL('../sdk/fnproject-fdk.js', import.meta.url)),
};

const sdkShims: Plugin = {
  name: 'nimbus-sdk-shims',
  setup(b) {
    const filter = new RegExp(
      `^(${Object.keys(SDK_SHIMS)
        .map((m) => m.replace(/[/.-]/g, '\\$&'))
        .join('|')})$`,
    );
    b.onResolve({ filter }, (args) => ({ path: SDK_SHIMS[args.path] }));
  },
};

/** Reads nimbus.yaml (or .yml/.json) from a folder; {} when there is none. */
export function readManifestFile(dir: string): { source: string; data: Record<string, unknown> } {
  for (const name of MANIFEST_FILES) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    let data: unknown;
    try {
      data = parseYaml(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new NimbusError('NIMBUS_INVALID_MANIFEST', `${name} is not valid YAML: ${(err as Error).message}`);
    }
    if (data !== null && data !== undefined && (typeof data !== 'object' || Array.isArray(data))) {
      throw new NimbusError('NIMBUS_INVALID_MANIFEST', `${name} must be a mapping of fields (name, runtime, handler, ...)`);
    }
    return { source: name, data: (data ?? {}) as Record<string, unknown> };
  }
  return { source: 'the deploy flags (no nimbus.yaml found)', data: {} };
}

export interface BuiltFunction {
  manifest: Manifest & { name: string };
  zip: Uint8Array;
  bundleBytes: number;
}

/**
 * Builds a function folder into an uploadable zip: esbuild bundles the handler with
 * its npm dependencies into one ES module (index.mjs) next to the resolved manifest.
 * Flags override the manifest; the name defaults to the folder's name.
 */
export async function buildFunction(dir: string, overrides: Record<string, unknown> = {}): Promise<BuiltFunction> {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `${dir} is not a folder; pass the folder that holds the function (and its nimbus.yaml)`);
  }
  const { source, data } = readManifestFile(root);
  const merged: Record<string, unknown> = { ...data, ...overrides };
  if (data.scale && overrides.scale) merged.scale = { ...(data.scale as object), ...(overrides.scale as object) };
  if (data.env && overrides.env) merged.env = { ...(data.env as object), ...(overrides.env as object) };
  const manifest = parseManifest(merged, source);
  const name = manifest.name ?? (root.split('/').pop() as string);
  if (!manifest.name) parseManifest({ ...merged, name }, 'the folder name (set name: in nimbus.yaml or pass --name)');
  if (manifest.runtime === 'python') return packPython(root, { ...manifest, name });
  if (manifest.runtime === 'process') return packProcess(root, { ...manifest, name });
  const { entry, exportName } = resolveHandler(manifest.handler, (p) => existsSync(join(root, p)), SOURCE_EXTENSIONS);

  const result = await build({
    entryPoints: [join(root, entry)],
    absWorkingDir: root,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: join(root, BUNDLE_ENTRY),
    write: false,
    logLevel: 'silent',
    legalComments: 'none',
    plugins: [sdkShims],
    // Bundled CommonJS dependencies may call require() for Node built-ins.
    banner: { js: "import { createRequire as __nimbusRequire } from 'node:module'; const require = __nimbusRequire(import.meta.url);" },
  }).catch((err: { errors?: Message[] }) => {
    const errors = err.errors ?? [];
    const text = errors.map(formatMessage).join('\n') || String(err);
    throw new NimbusError('NIMBUS_BUILD_FAILED', `esbuild could not bundle ${entry}:\n${text}`, { details: { errors: errors.map(formatMessage) } });
  });
  const code = result.outputFiles[0].contents;
  const zip = zipBundle({ [BUNDLE_ENTRY]: code }, { ...manifest, name }, exportName ? `index.${exportName}` : BUNDLE_ENTRY);
  return { manifest: { ...manifest, name }, zip, bundleBytes: code.length };
}

/** Python functions ship as they are: the folder's files and the resolved manifest. */
function packPython(root: string, manifest: Manifest & { name: string }): BuiltFunction {
  const handler = manifest.handler ?? PYTHON_DEFAULT_FILES.find((f) => existsSync(join(root, f)));
  const { entry, exportName } = resolveHandler(handler, (p) => existsSync(join(root, p)), PYTHON_EXTENSIONS);
  const files = collectFiles(root);
  for (const f of MANIFEST_FILES) delete files[f];
  const bytes = Object.values(files).reduce((n, f) => n + f.length, 0);
  return { manifest, zip: zipBundle(files, manifest, exportName ? `${entry}.${exportName}` : entry), bundleBytes: bytes };
}

/** Programs ship as they are; the handler, if any, is only passed on (as _HANDLER). */
function packProcess(root: string, manifest: Manifest & { name: string }): BuiltFunction {
  const files = collectFiles(root);
  for (const f of MANIFEST_FILES) delete files[f];
  const bytes = Object.values(files).reduce((n, f) => n + f.length, 0);
  return { manifest, zip: zipBundle(files, manifest, manifest.handler), bundleBytes: bytes };
}

/** The upload: files plus nimbus.json, the manifest with its handler resolved and durations spelled out. */
function zipBundle(files: Record<string, Uint8Array>, manifest: Manifest & { name: string }, handler: string | undefined): Uint8Array {
  const bundleManifest = {
    ...manifest,
    handler,
    timeout: `${manifest.timeout}ms`,
    scale: { ...manifest.scale, idleTimeout: `${manifest.scale.idleTimeout}ms`, window: `${manifest.scale.window}ms` },
    maxEventAge: `${manifest.maxEventAge}ms`,
  };
  return zipSync(
    { ...files, [BUNDLE_MANIFEST]: new TextEncoder().encode(`${JSON.stringify(bundleManifest, null, 2)}\n`) },
    { level: 6, mtime: new Date('1980-01-01T00:00:00Z') },
  );
}

function formatMessage(m: Message): string {
  const where = m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ` : '';
  return `${where}${m.text}`;
}

/** Stops esbuild's background service process (it restarts on the next build). */
export async function stopBuilder(): Promise<void> {
  await stop();
}
