import { parse as parseYaml } from 'yaml';
import { type ArtifactStore, type Bundle, readBundleZip } from '../artifacts/artifact-store.js';
import {
  DEFAULT_MAX_EVENT_AGE_MS,
  DEFAULT_PIDS,
  DEFAULT_RETRIES,
  DEFAULT_SCALE_WINDOW_MS,
  DEFAULT_TMP_MB,
  DEFAULT_UTILIZATION_PERCENT,
  MAX_SECRETS_PER_FUNCTION,
} from '../config/defaults.js';
import { BUNDLE_EXTENSIONS, PYTHON_EXTENSIONS, resolveHandler } from '../config/handler.js';
import { type Manifest, parseManifest, validateFunctionName } from '../config/manifest.js';
import type { FunctionSpec } from '../runtime/function-pool.js';
import type { RuntimeManager } from '../runtime/manager.js';
import type { LoadedMessage } from '../runtime/protocol/frames.js';
import { NimbusError, toNimbusError } from '../shared/errors.js';
import type { FunctionConfig, FunctionRecord, SecretInfo, Store, VersionRecord } from '../store/store.js';
import { NO_TRIGGERS, withCodeTriggers } from './code-triggers.js';
import { namesTakenBySecrets, validateSecretName } from './secrets.js';

export interface RegistryOptions {
  /**
   * Whether functions may run with isolation: thread (worker threads in the platform's
   * process: no sandbox, trusted code only). Off: such deploys are refused, and thread
   * functions already deployed run as processes.
   */
  allowThreadIsolation?: boolean;
  /** Where the one start-up line about thread functions goes (the platform's stderr). */
  warn?: (line: string) => void;
}

export interface DeployResult {
  record: FunctionRecord;
  created: boolean;
  /** The handler style the runtime picked when it loaded this version (e.g. workers, lambda, wsgi, http). */
  style: string;
}

/**
 * The functions the platform serves: store records plus the in-memory specs the
 * gateway needs on every request (kept here so a request never touches SQLite).
 */
export class FunctionRegistry {
  readonly #store: Store;
  readonly #artifacts: ArtifactStore;
  readonly #runtime: RuntimeManager;
  readonly #allowThreads: boolean;
  readonly #specs = new Map<string, FunctionSpec>();
  /** Deploys and secret changes of one function run one at a time (a deploy picks the next version number; both check env against secrets). */
  readonly #serial = new Map<string, Promise<unknown>>();
  /** Bundles that deploys under way have written but no version names yet: not to be removed by another deploy's failure. */
  readonly #pendingBundles = new Map<string, number>();
  /** How often a function's secrets changed since start: part of its spec key, so a change gets fresh instances. */
  readonly #secretsRevision = new Map<string, number>();
  /** Told when a function is removed (its queued events go too). */
  onRemoved: (name: string) => Promise<void> = async () => {};
  /** Told when the set of functions or their triggers may have changed (a deploy or a removal). */
  onChanged: () => void = () => {};

  constructor(store: Store, artifacts: ArtifactStore, runtime: RuntimeManager, opts: RegistryOptions = {}) {
    this.#store = store;
    this.#artifacts = artifacts;
    this.#runtime = runtime;
    this.#allowThreads = opts.allowThreadIsolation === true;
    const demoted: string[] = [];
    for (const record of store.listFunctions()) {
      const spec = this.#toSpec(record);
      if (record.latest.config.isolation === 'thread' && spec.isolation !== 'thread') demoted.push(record.name);
      this.#specs.set(record.name, spec);
      // Functions with scale.min > 0 are warm again after a restart.
      if (spec.scale.min > 0) runtime.pool(spec);
      // The others' first request takes a pre-started instance: start the pools that start lazily (threads, Python).
      else runtime.prewarm(spec);
    }
    if (demoted.length > 0) {
      (opts.warn ?? ((line) => process.stderr.write(`${line}\n`)))(
        `nimbus: thread isolation is off (start with --allow-thread-isolation to allow it): ${demoted.length} function(s) deployed with isolation: thread run as processes: ${demoted.join(', ')}`,
      );
    }
  }

  /** The latest version of every function. */
  all(): IterableIterator<FunctionSpec> {
    return this.#specs.values();
  }

  /** The spec of a function's latest version, or undefined. */
  spec(name: string): FunctionSpec | undefined {
    return this.#specs.get(name);
  }

  /**
   * Validates an uploaded zip, loads it once in a fresh instance (so a missing handler,
   * a syntax error or a program that never gets ready fails the deploy, and the previous
   * version keeps serving), then makes it the function's latest version.
   */
  deploy(name: string, zip: Uint8Array, now = Date.now()): Promise<DeployResult> {
    validateFunctionName(name);
    return this.#oneAtATime(name, () => this.#deploy(name, zip, now));
  }

  /** Runs work after the function's earlier deploys and secret changes, whether they failed or not. */
  #oneAtATime<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#serial.get(name) ?? Promise.resolve();
    const run = previous.then(work, work);
    const tail = run.catch(() => {});
    this.#serial.set(name, tail);
    void tail.then(() => {
      if (this.#serial.get(name) === tail) this.#serial.delete(name);
    });
    return run;
  }

  async #deploy(name: string, zip: Uint8Array, now: number): Promise<DeployResult> {
    const bundle = readBundleZip(zip);
    const config = this.#configFor(name, bundle);
    const existing = this.#store.getFunction(name);
    if (existing && existing.latest.digest === bundle.digest) {
      return { record: existing, created: false, style: existing.latest.config.detectedStyle ?? existing.latest.config.style ?? '' };
    }
    const hadBundle = this.#artifacts.has(bundle.sha256);
    this.#pendingBundles.set(bundle.sha256, (this.#pendingBundles.get(bundle.sha256) ?? 0) + 1);
    try {
      // Durable before the version that names it commits (ArtifactStore.put).
      this.#artifacts.put(bundle);
      return await this.#checkAndCommit(name, bundle, config, existing, now);
    } catch (err) {
      const others = (this.#pendingBundles.get(bundle.sha256) ?? 1) > 1;
      if (!hadBundle && !others && !this.#store.isBundleUsed(bundle.sha256)) this.#artifacts.remove(bundle.sha256);
      throw err;
    } finally {
      const left = (this.#pendingBundles.get(bundle.sha256) ?? 1) - 1;
      if (left > 0) this.#pendingBundles.set(bundle.sha256, left);
      else this.#pendingBundles.delete(bundle.sha256);
    }
  }

  /** The version config an upload asks for, after every check that needs no instance. */
  #configFor(name: string, bundle: Bundle): FunctionConfig {
    const manifest = readManifest(bundle);
    if (manifest.name !== undefined && manifest.name !== name) {
      throw new NimbusError('NIMBUS_NAME_MISMATCH', `the manifest names "${manifest.name}" but the upload is for "${name}"`);
    }
    if (manifest.isolation === 'thread' && !this.#allowThreads) {
      throw new NimbusError(
        'NIMBUS_THREAD_ISOLATION_DISABLED',
        `function "${name}" asks for isolation: thread, which this platform does not allow: a thread instance runs in the platform's own process without a sandbox`,
      );
    }
    const clash = namesTakenBySecrets(
      manifest,
      this.#store.listSecrets(name).map((s) => s.name),
    );
    if (clash.length > 0) {
      throw new NimbusError(
        'NIMBUS_SECRET_CONFLICT',
        `${clash.join(', ')} ${clash.length === 1 ? 'is' : 'are'} both in the manifest (env or bindings) and a secret of "${name}"`,
      );
    }
    const extensions = manifest.runtime === 'python' ? PYTHON_EXTENSIONS : BUNDLE_EXTENSIONS;
    // A program (runtime: process) has no entry module; its handler is passed on as is.
    const { entry, exportName } =
      manifest.runtime === 'process' ? { entry: '', exportName: undefined } : resolveHandler(manifest.handler, (p) => bundle.files.has(p), extensions);
    if (manifest.runtime === 'process' && manifest.style === 'lambda-runtime' && manifest.command === undefined && !bundle.files.has('bootstrap')) {
      throw new NimbusError(
        'NIMBUS_INVALID_MANIFEST',
        'style lambda-runtime needs an executable file named "bootstrap" in the function folder, or a command in nimbus.yaml',
      );
    }
    const { name: _ignored, ...rest } = manifest;
    return { ...rest, entry, ...(exportName ? { exportName } : {}) };
  }

  /** Loads the stored bundle once in a fresh instance, then records the version and moves traffic to it. */
  async #checkAndCommit(name: string, bundle: Bundle, asked: FunctionConfig, existing: FunctionRecord | undefined, now: number): Promise<DeployResult> {
    const version = Math.max(0, ...this.#store.listVersions(name).map((v) => v.version)) + 1;
    const candidate: VersionRecord = { id: 0, name, version, sha256: bundle.sha256, digest: bundle.digest, config: asked, createdAt: now };
    let loaded: LoadedMessage;
    let config: FunctionConfig;
    try {
      loaded = await this.#runtime.check(this.#toSpec({ name, createdAt: now, updatedAt: now, latest: candidate }));
      config = withCodeTriggers(asked, loaded);
    } catch (err) {
      const e = toNimbusError(err);
      // The function's own fault is the upload's problem (422); anything else (the platform could not start an instance) stays what it is.
      if (e.code !== 'NIMBUS_LOAD_FAILED' && e.code !== 'NIMBUS_HANDLER_NOT_FOUND') throw err;
      const keeps = existing ? `; version ${existing.latest.version} keeps serving until then` : '';
      throw new NimbusError(e.code, e.message, { status: 422, hint: `${e.hint}${keeps}`, details: e.details, cause: err });
    }
    const style = loaded.style;
    // Stored for display and for batching decisions: every load detects again, so the manifest stays the one source of truth.
    const result = this.#store.deploy(name, bundle, { ...config, detectedStyle: style }, now);
    if (result.created) {
      const spec = this.#toSpec(result.record);
      this.#specs.set(name, spec);
      // Creating the pool retires the previous version's and warms this one to scale.min.
      this.#runtime.pool(spec);
      this.onChanged();
    }
    return { ...result, style };
  }

  async remove(name: string): Promise<boolean> {
    validateFunctionName(name);
    const bundles = new Set(this.#store.listVersions(name).map((v) => v.sha256));
    const existed = this.#store.deleteFunction(name);
    this.#specs.delete(name);
    this.#secretsRevision.delete(name);
    this.#runtime.remove(name);
    // Running instances have their code in memory already; the files can go.
    for (const sha of bundles) if (!this.#store.isBundleUsed(sha) && !this.#pendingBundles.has(sha)) this.#artifacts.remove(sha);
    this.onChanged();
    await this.onRemoved(name);
    return existed;
  }

  /** A function's secrets: names and update times, never values. A function not deployed yet may have some. */
  listSecrets(fn: string): SecretInfo[] {
    return this.#store.listSecrets(validateFunctionName(fn));
  }

  /**
   * Sets a secret. It may be set before the function's first deploy (whose load check
   * then sees it). A deployed function's instances are replaced as by a deploy: requests
   * in flight finish on the old ones, every later request runs with the new value.
   */
  setSecret(fn: string, name: string, value: string, now = Date.now()): Promise<{ created: boolean; updatedAt: number }> {
    validateFunctionName(fn);
    validateSecretName(name);
    return this.#oneAtATime(fn, async () => {
      const record = this.#store.getFunction(fn);
      if (record && namesTakenBySecrets(record.latest.config, [name]).length > 0) {
        throw new NimbusError('NIMBUS_SECRET_CONFLICT', `${name} is already an env variable or binding of "${fn}" (version ${record.latest.version})`);
      }
      const names = this.#store.listSecrets(fn);
      if (names.length >= MAX_SECRETS_PER_FUNCTION && !names.some((s) => s.name === name)) {
        throw new NimbusError('NIMBUS_INVALID_SECRET', `function "${fn}" has ${names.length} secrets, the most allowed; remove one first`);
      }
      const { created } = this.#store.putSecret(fn, name, value, now);
      this.#restartWithSecrets(fn);
      return { created, updatedAt: now };
    });
  }

  /** Removes a secret; the function's instances are replaced, as by setSecret. */
  deleteSecret(fn: string, name: string): Promise<void> {
    validateFunctionName(fn);
    validateSecretName(name);
    return this.#oneAtATime(fn, async () => {
      if (!this.#store.deleteSecret(fn, name)) throw new NimbusError('NIMBUS_SECRET_NOT_FOUND', `function "${fn}" has no secret ${name}`);
      this.#restartWithSecrets(fn);
    });
  }

  /** A new spec (with a new key) for the latest version: its pool replaces the running one, whose instances drain and exit. */
  #restartWithSecrets(fn: string): void {
    const record = this.#store.getFunction(fn);
    if (!record) return;
    this.#secretsRevision.set(fn, (this.#secretsRevision.get(fn) ?? 0) + 1);
    const spec = this.#toSpec(record);
    this.#specs.set(fn, spec);
    this.#runtime.pool(spec);
  }

  #toSpec(record: FunctionRecord): FunctionSpec {
    const { latest } = record;
    const c = latest.config;
    const revision = this.#secretsRevision.get(record.name) ?? 0;
    return {
      key: revision === 0 ? String(latest.id) : `${latest.id}.${revision}`,
      name: record.name,
      runtime: c.runtime,
      // Versions stored before isolation existed run as processes; so do thread functions when the operator does not allow threads.
      isolation: c.isolation === 'thread' && this.#allowThreads ? 'thread' : 'process',
      style: c.detectedStyle ?? c.style,
      version: latest.version,
      memoryMB: c.memory,
      timeoutMs: c.timeout,
      // A Lambda Runtime API bootstrap takes one event at a time, as on Lambda: more requests mean more instances.
      scale: {
        min: c.scale.min,
        max: c.scale.max,
        concurrency: c.style === 'lambda-runtime' ? 1 : c.scale.concurrency,
        idleTimeoutMs: c.scale.idleTimeout,
        // Versions stored before these fields existed get the defaults.
        windowMs: c.scale.window ?? DEFAULT_SCALE_WINDOW_MS,
        utilization: (c.scale.utilization ?? DEFAULT_UTILIZATION_PERCENT) / 100,
      },
      // Versions stored before these fields existed get the defaults.
      async: { retries: c.retries ?? DEFAULT_RETRIES, maxEventAgeMs: c.maxEventAge ?? DEFAULT_MAX_EVENT_AGE_MS },
      triggers: c.triggers ?? NO_TRIGGERS,
      bindings: c.bindings ?? {},
      // Versions stored before the sandbox's fields existed get the defaults.
      sandbox: { tmpMB: c.tmp ?? DEFAULT_TMP_MB, pids: c.pids ?? DEFAULT_PIDS, network: c.network ?? { outbound: true, allow: [] } },
      load: {
        functionName: record.name,
        version: latest.version,
        codeDir: this.#artifacts.dir(latest.sha256),
        entry: c.entry,
        exportName: c.exportName,
        style: c.style,
        runtime: c.runtime,
        command: c.command,
        handler: c.handler,
        payloadFormat: c.payloadFormat,
        // Secrets join the env only here, in memory, on their way to the instance.
        env: { ...c.env, ...this.#store.secretValues(record.name) },
        ...(c.bindings && Object.keys(c.bindings).length > 0 ? { bindings: c.bindings } : {}),
        memoryMB: c.memory,
        timeoutMs: c.timeout,
      },
    };
  }
}

/** The manifest an upload carries (parsed and validated), or the defaults when it has none. */
function readManifest(bundle: Bundle): Manifest {
  let raw: unknown = {};
  const file = bundle.manifest?.file;
  if (bundle.manifest) {
    const text = new TextDecoder().decode(bundle.manifest.data);
    const json = bundle.manifest.file.endsWith('.json');
    try {
      raw = json ? JSON.parse(text) : parseYaml(text);
    } catch (err) {
      // The parsers' own messages quote the text around the fault, env values included: say only where it is.
      const where = /(line \d+, column \d+|position \d+)/.exec((err as Error).message)?.[1];
      throw new NimbusError(
        'NIMBUS_INVALID_MANIFEST',
        `${bundle.manifest.file} in the bundle is not valid ${json ? 'JSON' : 'YAML'}${where ? ` (at ${where})` : ''}`,
      );
    }
  }
  return parseManifest(raw, file ?? 'the bundle');
}
