import { createHash, type Hash } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import { MAX_BUNDLE_FILES, MAX_BUNDLE_UNPACKED_BYTES } from '../config/defaults.js';
import { MANIFEST_FILES } from '../config/handler.js';
import { NimbusError } from '../shared/errors.js';

export interface Bundle {
  /**
   * sha256 over the sorted (path, content) pairs of the code, the manifest left out: the
   * name of the bundle's folder. The same code always has the same id, whatever its env.
   */
  sha256: string;
  /**
   * sha256 over the whole upload, manifest included (so its env values too): the same
   * upload twice is one version. Kept in the store to recognise a redeploy; never shown.
   */
  digest: string;
  /** The code: every file of the upload but a manifest at its root. */
  files: Map<string, Uint8Array>;
  /** The manifest at the root of the upload (the first of MANIFEST_FILES found), if any. Never written to disk. */
  manifest?: { file: string; data: Uint8Array };
}

/** Folders being written (or removed) carry this prefix until they are whole (or gone). */
export const HALF_WRITTEN_PREFIX = '.tmp-';

/**
 * Published once a put() has made a bundle durable ({ sha256, dir }): everything that
 * names it (a version in the store) comes after. Costs nothing when nobody listens.
 */
export const BUNDLE_STORED_CHANNEL = 'nimbus:artifacts:stored';
const stored = channel(BUNDLE_STORED_CHANNEL);

/** A bundle folder's name: a sha256 in hex. */
export const BUNDLE_DIR_PATTERN = /^[0-9a-f]{64}$/;

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

/**
 * The hash both Bundle ids use: (path, length, content) for each file in path order.
 * Contents are read one at a time, so a folder on disk need not fit in memory at once.
 */
export function hashFiles(paths: Iterable<string>, read: (path: string) => Uint8Array): string {
  const hash = createHash('sha256');
  for (const path of [...paths].sort(comparePaths)) addFile(hash, path, read(path));
  return hash.digest('hex');
}

function addFile(hash: Hash, path: string, data: Uint8Array): void {
  hash.update(`${path}\0${data.length}\0`);
  hash.update(data);
}

const comparePaths = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const byPath = ([a]: [string, unknown], [b]: [string, unknown]) => comparePaths(a, b);

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
  if (unsafe.length > 0) throw invalidPaths('the bundle has unsafe paths', unsafe);
  const all = Object.entries(entries).sort(byPath);
  if (all.length === 0) throw new NimbusError('NIMBUS_INVALID_BUNDLE', 'the bundle is empty');
  // A file that is also a folder ("a" and "a/b.js") cannot be written out; say which, before anything is.
  const clashes = fileFolderClashes(all.map(([path]) => path));
  if (clashes.length > 0) throw invalidPaths('the bundle has paths that are both a file and a folder', clashes);
  const digest = createHash('sha256');
  for (const [path, data] of all) addFile(digest, path, data);
  // The manifest (and its env values) lives in the store's version record, never in the bundle folder.
  const manifestFile = MANIFEST_FILES.find((f) => Object.hasOwn(entries, f));
  const files = new Map(all.filter(([path]) => !MANIFEST_FILES.includes(path)));
  return {
    sha256: hashFiles(files.keys(), (path) => files.get(path) as Uint8Array),
    digest: digest.digest('hex'),
    files,
    ...(manifestFile ? { manifest: { file: manifestFile, data: entries[manifestFile] } } : {}),
  };
}

/** Paths of files that are also the folder of another file. */
function fileFolderClashes(paths: string[]): string[] {
  const files = new Set(paths);
  const clashes = new Set<string>();
  for (const path of paths) {
    for (let slash = path.indexOf('/'); slash !== -1; slash = path.indexOf('/', slash + 1)) {
      const folder = path.slice(0, slash);
      if (files.has(folder)) clashes.add(folder);
    }
  }
  return [...clashes];
}

function invalidPaths(what: string, paths: string[]): NimbusError {
  const shown = paths
    .slice(0, 5)
    .map((p) => JSON.stringify(p))
    .join(', ');
  return new NimbusError('NIMBUS_INVALID_BUNDLE', `${what}: ${shown}`, { details: { paths } });
}

export interface ArtifactStoreOptions {
  /** Flushes one open file or folder to disk (fs.fsyncSync; tests watch it). */
  fsync?: (fd: number) => void;
}

/**
 * Content-addressed bundle storage on disk: <root>/<sha256>/<files>. Written once, never
 * changed. A bundle is built under a HALF_WRITTEN_PREFIX name, flushed to disk (files,
 * then folders, deepest first) and renamed into place, and the rename is flushed too:
 * when put() returns, the folder survives a crash or power loss, so a version that names
 * it may commit. A crash before that leaves only a half-written folder, which
 * removeHalfWritten() clears at the next start.
 */
export class ArtifactStore {
  readonly root: string;
  readonly #fsync: (fd: number) => void;

  constructor(root: string, opts: ArtifactStoreOptions = {}) {
    this.root = root;
    this.#fsync = opts.fsync ?? fsyncSync;
    mkdirSync(root, { recursive: true, mode: 0o755 });
  }

  dir(sha256: string): string {
    return join(this.root, sha256);
  }

  has(sha256: string): boolean {
    return existsSync(this.dir(sha256));
  }

  /** The names of the bundle folders on disk. */
  list(): string[] {
    return readdirSync(this.root).filter((name) => BUNDLE_DIR_PATTERN.test(name));
  }

  /**
   * Deletes what a crash left half-written (a bundle being put or removed). Only for a
   * store nobody else writes to: the platform calls it at start, holding the data dir's lock.
   */
  removeHalfWritten(): string[] {
    const removed = readdirSync(this.root).filter((name) => name.startsWith(HALF_WRITTEN_PREFIX));
    for (const name of removed) rmSync(join(this.root, name), { recursive: true, force: true });
    return removed;
  }

  /** Removes a bundle; a crash part-way leaves a half-written folder, never a partial bundle under its real name. */
  remove(sha256: string): void {
    const dir = this.dir(sha256);
    if (!existsSync(dir)) return;
    const doomed = this.#tempName(`rm-${sha256}`);
    renameSync(dir, doomed);
    rmSync(doomed, { recursive: true, force: true });
  }

  /** Moves a whole bundle folder to another name (layout migration), durably; a folder already there wins. */
  rename(from: string, to: string): void {
    if (existsSync(this.dir(to))) this.remove(from);
    else {
      renameSync(this.dir(from), this.dir(to));
      this.syncFolder(this.root);
    }
  }

  /** Writes the bundle unless it is already stored; the directory appears atomically and durably. */
  put(bundle: Bundle): string {
    const dest = this.dir(bundle.sha256);
    if (existsSync(dest)) {
      // It may be there from a start that crashed before flushing the rename.
      this.syncFolder(this.root);
      if (stored.hasSubscribers) stored.publish({ sha256: bundle.sha256, dir: dest });
      return dest;
    }
    const tmp = this.#tempName(bundle.sha256);
    try {
      mkdirSync(tmp, { mode: 0o755 });
      const folders = new Set<string>([tmp]);
      for (const [path, data] of bundle.files) {
        const file = join(tmp, path);
        mkdirSync(dirname(file), { recursive: true });
        for (let d = dirname(file); !folders.has(d); d = dirname(d)) folders.add(d);
        // Scripts and binaries keep the right to run (runtime: process); zips carry no modes.
        const executable = (data[0] === 0x23 && data[1] === 0x21) || (data[0] === 0x7f && data[1] === 0x45 && data[2] === 0x4c && data[3] === 0x46);
        this.#writeDurably(file, data, executable ? 0o755 : 0o644);
      }
      // Deepest first: a folder is flushed after the entries in it.
      for (const folder of [...folders].sort((a, b) => b.length - a.length)) this.syncFolder(folder);
      renameSync(tmp, dest);
      this.syncFolder(this.root);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(dest)) throw err;
    }
    if (stored.hasSubscribers) stored.publish({ sha256: bundle.sha256, dir: dest });
    return dest;
  }

  /** Flushes a folder's entries (names, renames, removals) to disk. */
  syncFolder(path: string): void {
    const fd = openSync(path, 'r');
    try {
      this.#fsync(fd);
    } finally {
      closeSync(fd);
    }
  }

  #writeDurably(file: string, data: Uint8Array, mode: number): void {
    const fd = openSync(file, 'w', mode);
    try {
      writeFileSync(fd, data);
      this.#fsync(fd);
    } finally {
      closeSync(fd);
    }
  }

  #tempName(what: string): string {
    return join(this.root, `${HALF_WRITTEN_PREFIX}${what}-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
  }
}
