import { parse as parseYaml } from 'yaml';
import { type ArtifactStore, readBundleZip } from '../artifacts/artifact-store.js';
import {
  DEFAULT_MAX_EVENT_AGE_MS,
  DEFAULT_PIDS,
  DEFAULT_RETRIES,
  DEFAULT_SCALE_WINDOW_MS,
  DEFAULT_TMP_MB,
  DEFAULT_UTILIZATION_PERCENT,
} from '../config/defaults.js';
import { BUNDLE_EXTENSIONS, MANIFEST_FILES, PYTHON_EXTENSIONS, resolveHandler } from '../config/handler.js';
import { parseManifest, validateFunctionName } from '../config/manifest.js';
import { type CronTrigger, cronProblem, type Triggers } from '../config/triggers.js';
import type { FunctionSpec } from '../runtime/function-pool.js';
import type { RuntimeManager } from '../runtime/manager.js';
import type { LoadedMessage } from '../runtime/protocol/frames.js';
import { NimbusError, toNimbusError } from '../shared/errors.js';
import type { FunctionConfig, FunctionRecord, Store, VersionRecord } from '../store/store.js';

/**
 * Checks the triggers against the entry points the code has (a Workers module with a
 * schedule needs scheduled(), with topics or buckets queue(); an Azure module's schedule
 * needs app.timer), and takes schedules the code declares (Azure app.timer) when the
 * manifest has none.
 */
function withCodeTriggers(config: FunctionConfig, loaded: LoadedMessage): FunctionConfig {
  const t = config.triggers ?? NO_TRIGGERS;
  const handles = new Set(loaded.handles ?? []);
  const missing = (what: string, needs: string) =>
    new NimbusError('NIMBUS_HANDLER_NOT_FOUND', `the manifest has ${what} but the code has no ${needs}`, {
      hint: 'add the handler, or remove the trigger from nimbus.yaml',
    });
  if (loaded.style === 'workers') {
    if (t.cron.length > 0 && !handles.has('scheduled')) throw missing('triggers.cron', 'scheduled(controller, env, ctx) in its default export');
    if (t.topics.length + t.buckets.length > 0 && !handles.has('queue'))
      throw missing('topic or bucket triggers', 'queue(batch, env, ctx) in its default export');
  }
  if (loaded.style !== 'azure') return config;
  if (t.topics.length + t.buckets.length > 0 && !handles.has('http'))
    throw missing('topic or bucket triggers', 'app.http(name, { handler }) to receive them (app.timer only runs schedules)');
  const timers = loaded.timers ?? [];
  if (t.cron.length === 0 && timers.length > 0) {
    const cron: CronTrigger[] = [];
    for (const timer of timers) {
      const problem = cronProblem(timer.schedule, 'UTC');
      if (problem) throw new NimbusError('NIMBUS_INVALID_MANIFEST', `app.timer("${timer.name}"): ${problem}`);
      cron.push({ schedule: timer.schedule.trim(), timezone: 'UTC', timer: timer.name });
    }
    return { ...config, triggers: { ...t, cron } };
  }
  if (t.cron.length === 0) return config;
  if (!handles.has('timer')) throw missing('triggers.cron', 'app.timer(name, { schedule, handler })');
  // A manifest schedule runs the timer declared with the same schedule, or the only timer there is.
  const cron = t.cron.map((c: CronTrigger) => {
    const timer = timers.find((x) => x.schedule.trim() === c.schedule) ?? (timers.length === 1 ? timers[0] : undefined);
    if (!timer)
      throw new NimbusError(
        'NIMBUS_HANDLER_NOT_FOUND',
        `triggers.cron "${c.schedule}" matches none of the code's timers (${timers.map((x) => `${x.name}: ${x.schedule}`).join(', ')})`,
        { hint: "give the manifest schedule the same text as the app.timer schedule it should run, or leave triggers.cron out to use the code's schedules" },
      );
    return { ...c, timer: timer.name };
  });
  return { ...config, triggers: { ...t, cron } };
}

const NO_TRIGGERS: Triggers = Object.freeze({ cron: [], topics: [], buckets: [] });

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
  readonly #specs = new Map<string, FunctionSpec>();
  /** Deploys of one function run one at a time (each picks the next version number). */
  readonly #deploying = new Map<string, Promise<unknown>>();
  /** Told when a function is removed (its queued events go too). */
  onRemoved: (name: string) => Promise<void> = async () => {};
  /** Told when the set of functions or their triggers may have changed (a deploy or a removal). */
  onChanged: () => void = () => {};

  constructor(store: Store, artifacts: ArtifactStore, runtime: RuntimeManager) {
    this.#store = store;
    this.#artifacts = artifacts;
    this.#runtime = runtime;
    for (const record of store.listFunctions()) {
      const spec = this.#toSpec(record);
      this.#specs.set(record.name, spec);
      // Functions with scale.min > 0 are warm again after a restart.
      if (spec.scale.min > 0) runtime.pool(spec);
      // The others' first request takes a pre-started instance: start the pools that start lazily (threads, Python).
      else runtime.prewarm(spec);
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
    const previous = this.#deploying.get(name) ?? Promise.resolve();
    const run = previous.then(
      () => this.#deploy(name, zip, now),
      () => this.#deploy(name, zip, now),
    );
    const tail = run.catch(() => {});
    this.#deploying.set(name, tail);
    void tail.then(() => {
      if (this.#deploying.get(name) === tail) this.#deploying.delete(name);
    });
    return run;
  }

  async #deploy(name: string, zip: Uint8Array, now: number): Promise<DeployResult> {
    const bundle = readBundleZip(zip);
    const manifestFile = MANIFEST_FILES.find((f) => bundle.files.has(f));
    let raw: unknown = {};
    if (manifestFile) {
      const text = new TextDecoder().decode(bundle.files.get(manifestFile));
      try {
        raw = manifestFile.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
      } catch (err) {
        throw new NimbusError('NIMBUS_INVALID_MANIFEST', `${manifestFile} in the bundle cannot be parsed: ${(err as Error).message}`);
      }
    }
    const manifest = parseManifest(raw, manifestFile ?? 'the bundle');
    if (manifest.name !== undefined && manifest.name !== name) {
      throw new NimbusError('NIMBUS_NAME_MISMATCH', `the manifest names "${manifest.name}" but the upload is for "${name}"`);
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
    let config: FunctionConfig = { ...rest, entry, ...(exportName ? { exportName } : {}) };
    const existing = this.#store.getFunction(name);
    if (existing && existing.latest.sha256 === bundle.sha256) {
      return { record: existing, created: false, style: existing.latest.config.detectedStyle ?? existing.latest.config.style ?? '' };
    }
    const hadBundle = this.#artifacts.has(bundle.sha256);
    this.#artifacts.put(bundle);
    const version = Math.max(0, ...this.#store.listVersions(name).map((v) => v.version)) + 1;
    const candidate: VersionRecord = { id: 0, name, version, sha256: bundle.sha256, config, createdAt: now };
    let loaded: LoadedMessage;
    try {
      loaded = await this.#runtime.check(this.#toSpec({ name, createdAt: now, updatedAt: now, latest: candidate }));
      config = withCodeTriggers(config, loaded);
    } catch (err) {
      if (!hadBundle && !this.#store.isBundleUsed(bundle.sha256)) this.#artifacts.remove(bundle.sha256);
      const e = toNimbusError(err);
      // The function's own fault is the upload's problem (422); anything else (the platform could not start an instance) stays what it is.
      if (e.code !== 'NIMBUS_LOAD_FAILED' && e.code !== 'NIMBUS_HANDLER_NOT_FOUND') throw err;
      const keeps = existing ? `; version ${existing.latest.version} keeps serving until then` : '';
      throw new NimbusError(e.code, e.message, { status: 422, hint: `${e.hint}${keeps}`, details: e.details, cause: err });
    }
    const style = loaded.style;
    // Stored for display and for batching decisions: every load detects again, so the manifest stays the one source of truth.
    const result = this.#store.deploy(name, bundle.sha256, { ...config, detectedStyle: style }, now);
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
    this.#runtime.remove(name);
    // Running instances have their code in memory already; the files can go.
    for (const sha of bundles) if (!this.#store.isBundleUsed(sha)) this.#artifacts.remove(sha);
    this.onChanged();
    await this.onRemoved(name);
    return existed;
  }

  #toSpec(record: FunctionRecord): FunctionSpec {
    const { latest } = record;
    const c = latest.config;
    return {
      key: String(latest.id),
      name: record.name,
      runtime: c.runtime,
      // Versions stored before isolation existed run as processes.
      isolation: c.isolation ?? 'process',
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
        env: c.env,
        ...(c.bindings && Object.keys(c.bindings).length > 0 ? { bindings: c.bindings } : {}),
        memoryMB: c.memory,
        timeoutMs: c.timeout,
      },
    };
  }
}
