import { NimbusError } from '../shared/errors.js';

/** Manifest file names, in the order they are looked for (a folder or a bundle). */
export const MANIFEST_FILES = ['nimbus.yaml', 'nimbus.yml', 'nimbus.json'];

/** Extensions a handler file may have in source folders and in built bundles. */
export const SOURCE_EXTENSIONS = ['.ts', '.mts', '.cts', '.tsx', '.js', '.mjs', '.cjs', '.jsx'];
export const BUNDLE_EXTENSIONS = ['.mjs', '.js', '.cjs'];
export const PYTHON_EXTENSIONS = ['.py'];
/** Where a Python function's handler usually lives, when the manifest does not say. */
export const PYTHON_DEFAULT_FILES = ['handler.py', 'lambda_function.py', 'app.py', 'main.py', 'index.py'];

export interface ResolvedHandler {
  /** The entry file, relative to the function folder. */
  entry: string;
  /** The export to call; undefined means "detect the style from the module". */
  exportName?: string;
}

/**
 * Turns a manifest `handler` into an entry file and an export, the way Lambda reads
 * "index.handler": a name that is a file is the entry (style detected); otherwise the
 * part after the last dot is the export and the rest a file with a known extension.
 * With no handler, the first of index.<ext> that exists is the entry.
 *
 * @example resolveHandler('src/app.handler', (p) => p === 'src/app.ts', SOURCE_EXTENSIONS)
 *          // → { entry: 'src/app.ts', exportName: 'handler' }
 */
export function resolveHandler(handler: string | undefined, exists: (path: string) => boolean, extensions: string[]): ResolvedHandler {
  if (handler === undefined) {
    for (const ext of extensions) if (exists(`index${ext}`)) return { entry: `index${ext}` };
    throw new NimbusError('NIMBUS_INVALID_MANIFEST', `no handler given and no index file found (looked for index${extensions.join(', index')})`, {
      details: [{ field: 'handler', value: handler, message: 'set handler, e.g. "index.ts" or "index.handler"' }],
    });
  }
  const fileExt = extensions.find((ext) => handler.endsWith(ext));
  if (fileExt && exists(handler)) return { entry: handler };
  if (fileExt) {
    // "index.js" with only index.ts present is a missing file, not export "js" of index.
    const stem = handler.slice(0, -fileExt.length);
    const near = extensions.map((ext) => stem + ext).find(exists);
    throw new NimbusError('NIMBUS_INVALID_MANIFEST', `handler "${handler}" names no file in the function folder${near ? `; did you mean "${near}"?` : ''}`, {
      details: [{ field: 'handler', value: handler, message: near ? `the folder has ${near}` : 'no such file' }],
    });
  }
  const dot = handler.lastIndexOf('.');
  if (dot > 0) {
    const base = handler.slice(0, dot);
    const exportName = handler.slice(dot + 1);
    if (/^[A-Za-z_$][\w$]*$/.test(exportName)) {
      if (exists(base) && extensions.some((ext) => base.endsWith(ext))) return { entry: base, exportName };
      for (const ext of extensions) if (exists(base + ext)) return { entry: base + ext, exportName };
    }
  }
  throw new NimbusError('NIMBUS_INVALID_MANIFEST', `handler "${handler}" names no file in the function folder`, {
    details: [{ field: 'handler', value: handler, message: `use "<file>" or "<file>.<export>" with a file ending in ${extensions.join(', ')}` }],
  });
}
