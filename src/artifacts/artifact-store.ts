import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import { MAX_BUNDLE_FILES, MAX_BUNDLE_UNPACKED_BYTES } from '../config/defaults.js';
import { NimbusError } from '../shared/errors.js';

export interface Bundle {
  /** sha256 over the sorted (path, content) pairs: the same code always has the same id. */
  sha256: string;
  files: Map<string, Uint8Array>;
}

/**
 * Checks that a path from an upload stays inside the bundle: relative, "/"-separated,
 * no "." or ".." segments, no control characters.
 */
export function isSafeBundlePath(path: string): boolean {
  if (path.length === 0 || path.length > 1024) return false;
  if (path.startsWith('/') || path.includes('\\') || /[\u0000-\u001f]/.test(path)) return false;
  if (/^[A-Za-z]:/.test(path)) return false;
  return path.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/** Unpacks an uploaded zip in memory, refusing unsafe paths and zip bombs before inflating. */
export function readBundleZip(zip: Uint8Array): Bundle {
  let total = 0;
  let count = 0;
  const unsafe: string[] = [];
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(zip, {
      filter(file) {
        if (file.name.endsWith('/')) {
          if (!isSafeBundlePath(file.name.slice(0, -1))) unsafe.push(file.name);
          return false;
        }
        if (!isSafeBundlePath(file.name)) {
          unsafe.push(file.name);
          return false;
        }
        count++;
        total += file.originalSize;
        if (total > MAX_BUNDLE_UNPACKED_BYTES || count > MAX_BUNDLE_FILES) {
          throw new NimbusError('NIMBUS_BUNDLE_TOO_LARGE', `the bundle unpacks to more than ${MAX_BUNDLE_UNPACKED_BYTES} bytes or ${MAX_BUNDLE_FILES} files`);
        }
        return true;
      },
    });
  } catch (err) {
    if (err instanceof NimbusError) throw err;
    throw new NimbusError('NIMBUS_INVALID_BUNDLE', `the upload is not a readable zip archive (${(err as Error).message})`);
  }
  if (unsafe.length > 0) {
    throw new NimbusError(
      'NIMBUS_INVALID_BUNDLE',
      `the bundle has unsafe paths: ${unsafe
        .slice(0, 5)
        .map((p) => JSON.stringify(p))
        .join(', ')}`,
      { details: { paths: unsafe } },
    );
  }
  const files = new Map(Object.entries(entries).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  if (files.size === 0) throw new NimbusError('NIMBUS_INVALID_BUNDLE', 'the bundle is empty');
  const hash = createHash('sha256');
  for (const [path, data] of files) {
    hash.update(`${path}\0${data.length}\0`);
    hash.update(data);
  }
  return { sha256: hash.digest('hex'), files };
}

/** Content-addressed bundle storage on disk: <root>/<sha256>/<files>. Written once, never changed. */
export class ArtifactStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
    mkdirSync(root, { recursive: true, mode: 0o755 });
  }

  dir(sha256: string): string {
    return join(this.root, sha256);
  }

  has(sha256: string): boolean {
    return existsSync(this.dir(sha256));
  }

  remove(sha256: string): void {
    rmSync(this.dir(sha256), { recursive: true, force: true });
  }

  /** Writes the bundle unless it is already stored; the directory appears atomically. */
  put(bundle: Bundle): string {
    const dest = this.dir(bundle.sha256);
    if (existsSync(dest)) return dest;
    const tmp = join(this.root, `.tmp-${bundle.sha256}-${process.pid}-${Date.now()}`);
    try {
      for (const [path, data] of bundle.files) {
        const file = join(tmp, path);
        mkdirSync(dirname(file), { recursive: true });
        // Scripts and binaries keep the right to run (runtime: process); zips carry no modes.
        const executable = (data[0] === 0x23 && data[1] === 0x21) || (data[0] === 0x7f && data[1] === 0x45 && data[2] === 0x4c && data[3] === 0x46);
        writeFileSync(file, data, { mode: executable ? 0o755 : 0o644 });
      }
      renameSync(tmp, dest);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(dest)) throw err;
    }
    return dest;
  }
}
