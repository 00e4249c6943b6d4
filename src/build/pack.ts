import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { MAX_BUNDLE_UNPACKED_BYTES } from '../config/defaults.js';
import { NimbusError } from '../shared/errors.js';

/** Folders a function never needs at run time. */
const SKIP = new Set(['.git', 'node_modules', '__pycache__', '.venv', 'venv', '.nimbus', '.mypy_cache', '.pytest_cache']);

/**
 * Collects a function folder's files as they are (for runtimes that need no build),
 * without caches and VCS folders. Paths are relative, "/"-separated.
 */
export function collectFiles(root: string): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  let total = 0;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      if (SKIP.has(name) || name.endsWith('.pyc')) continue;
      const path = join(dir, name);
      const stat = statSync(path);
      if (stat.isDirectory()) walk(path);
      else if (stat.isFile()) {
        total += stat.size;
        if (total > MAX_BUNDLE_UNPACKED_BYTES)
          throw new NimbusError('NIMBUS_BUNDLE_TOO_LARGE', `${root} holds more than ${MAX_BUNDLE_UNPACKED_BYTES} bytes of files`);
        files[relative(root, path).split('\\').join('/')] = readFileSync(path);
      }
    }
  };
  walk(root);
  return files;
}
