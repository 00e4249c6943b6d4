// Bundles for the admin API, zipped with fflate as the platform does, without starting
// the CLI and esbuild for each of hundreds of deploys.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { strToU8, zipSync } from 'fflate';

/**
 * A bench function folder as a bundle, with `manifest` as nimbus.json in place of its
 * nimbus.yaml (left out: the platform would read it first), so one folder serves many
 * names and settings. Entries are stored, not compressed, with a fixed date, so the same
 * folder and manifest always give the same bytes.
 */
export function zipFolder(dir, manifest) {
  const files = {};
  for (const name of readdirSync(dir).sort()) {
    if (name === 'nimbus.yaml' || !statSync(join(dir, name)).isFile()) continue;
    files[name] = new Uint8Array(readFileSync(join(dir, name)));
  }
  files['nimbus.json'] = strToU8(JSON.stringify(manifest));
  return Buffer.from(zipSync(files, { level: 0, mtime: new Date('1980-01-01T00:00:00') }));
}
