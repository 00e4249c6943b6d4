import type { Manifest } from '../config/manifest.js';

/** A deployed version's configuration: the validated manifest plus the resolved entry. */
export interface FunctionConfig extends Omit<Manifest, 'name'> {
  entry: string;
  exportName?: string;
  /** The style the runtime picked at deploy (display only; every load detects again). */
  detectedStyle?: string;
}

export interface VersionRecord {
  /** Unique across all functions and time (a removed and redeployed function never reuses it). */
  id: number;
  name: string;
  version: number;
  /** The code's bundle folder: sha256 over its files, the manifest left out (artifact-store.ts). */
  sha256: string;
  /** sha256 over the whole upload, manifest included: a redeploy of the same upload is no new version. Never shown. */
  digest: string;
  /** The validated manifest, env values included: only the platform's store holds them (never the bundle folder). */
  config: FunctionConfig;
  createdAt: number;
}

export interface FunctionRecord {
  name: string;
  createdAt: number;
  updatedAt: number;
  latest: VersionRecord;
}

/** A function's secret as listings show it: the name and when it was last set, never the value. */
export interface SecretInfo {
  name: string;
  updatedAt: number;
}

export interface LogEntry {
  id?: number;
  name: string;
  version: number | null;
  requestId: string | null;
  stream: 'stdout' | 'stderr' | 'system';
  ts: number;
  line: string;
}

/**
 * Where the platform keeps its state. SQLite is the embedded default; PostgreSQL
 * arrives with cluster mode and must pass the same contract tests.
 */
export interface Store {
  getFunction(name: string): FunctionRecord | undefined;
  listFunctions(): FunctionRecord[];
  listVersions(name: string): VersionRecord[];
  /** Creates a version unless the latest already has this digest; moves latest to it. */
  deploy(name: string, bundle: { sha256: string; digest: string }, config: FunctionConfig, now: number): { record: FunctionRecord; created: boolean };
  /** Removes the function, its versions, logs and secrets; true if the function existed. */
  deleteFunction(name: string): boolean;
  /** Whether any version of any function still uses this bundle. */
  isBundleUsed(sha256: string): boolean;
  /** Points every version that uses bundle `from` at bundle `to` (a bundle folder renamed by a layout migration). */
  moveBundle(from: string, to: string): void;
  /** A function's secrets, names and update times only, sorted by name. */
  listSecrets(fn: string): SecretInfo[];
  /** A function's secret values, for its instances' LOAD only: never for a listing, a log or an error. */
  secretValues(fn: string): Record<string, string>;
  /** Sets a secret; created is false when it replaced a value. */
  putSecret(fn: string, name: string, value: string, now: number): { created: boolean };
  /** Removes a secret; false if it was not set. */
  deleteSecret(fn: string, name: string): boolean;
  appendLogs(entries: LogEntry[]): void;
  readLogs(name: string, opts: { afterId?: number; limit: number; requestId?: string }): LogEntry[];
  pruneLogs(keepPerFunction: number): void;
  close(): void;
}
