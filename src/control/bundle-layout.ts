import { lstatSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type ArtifactStore, hashFiles } from '../artifacts/artifact-store.js';
import { MANIFEST_FILES } from '../config/handler.js';
import type { Store } from '../store/store.js';

export interface BundleRepair {
  /** Half-written folders a crash left, removed. */
  halfWritten: string[];
  /** Bundle folders of the old layout (manifest inside), moved to the current one. */
  migrated: string[];
}

/**
 * Puts the bundle store in order at start, before any instance reads it (the platform
 * holds the data dir's lock, so nothing else writes to it):
 *
 * 1. removes the half-written folders of puts and removals a crash interrupted;
 * 2. moves bundles of the old layout to the current one. Until now a bundle folder held
 *    the uploaded manifest, env values included, where any function able to read the
 *    bundle store could read them, and was named by a hash over code and manifest. Now
 *    the manifest lives only in the store's version record, and a folder holds only code
 *    and is named by the code's hash. Versions keep their old name as their digest (the
 *    store's first migration copies it), so redeploying the same upload is still no new
 *    version.
 *
 * Each old folder goes in three steps, any of which a crash may interrupt and the next
 * start finishes: point its versions at the new name; rename the folder (or drop it if
 * the same code is stored already); delete the manifest files in it. A folder is old
 * while it has a manifest file at its root, which a current folder never has.
 */
export function repairBundles(store: Store, artifacts: ArtifactStore): BundleRepair {
  const halfWritten = artifacts.removeHalfWritten();
  const migrated: string[] = [];
  for (const name of artifacts.list()) {
    const dir = artifacts.dir(name);
    const manifests = MANIFEST_FILES.filter((f) => isFile(join(dir, f)));
    if (manifests.length === 0) continue;
    const code = hashFiles(codePaths(dir), (path) => readFileSync(join(dir, path)));
    if (code !== name) {
      store.moveBundle(name, code);
      artifacts.rename(name, code);
    }
    if (artifacts.has(code)) {
      for (const f of manifests) rmSync(join(artifacts.dir(code), f), { force: true });
      artifacts.syncFolder(artifacts.dir(code));
    }
    migrated.push(name);
  }
  return { halfWritten, migrated };
}

function isFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}

/** A bundle folder's file paths ("/"-separated), the root manifests left out: what its code hash covers. */
function codePaths(root: string): string[] {
  const paths: string[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = `${prefix}${entry.name}`;
      if (entry.isDirectory()) walk(join(dir, entry.name), `${path}/`);
      else if (entry.isFile() && !(prefix === '' && MANIFEST_FILES.includes(entry.name))) paths.push(path);
    }
  };
  walk(root, '');
  return paths;
}
