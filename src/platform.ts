import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { join, resolve } from 'node:path';
import { ArtifactStore } from './artifacts/artifact-store.js';
import { RUNTIME_FILE, type RuntimeInfo, TOKEN_FILE } from './config/data-files.js';
import { DEFAULT_WARM_POOL_SIZE, SHUTDOWN_DRAIN_TIMEOUT_MS } from './config/defaults.js';
import { type EdgeOptions, resolveEdge } from './config/edge.js';
import { createAdminServer } from './control/admin.js';
import { AdminHosts } from './control/admin-hosts.js';
import { repairBundles } from './control/bundle-layout.js';
import { FunctionRegistry } from './control/registry.js';
import { CallbackPolicy } from './events/callback-policy.js';
import { Events, type EventsOptions } from './events/events.js';
import { SqliteQueue } from './events/sqlite-queue.js';
import { createGateway } from './gateway/gateway.js';
import { ByteBudget } from './gateway/lambda-auth.js';
import { DIST_SRC_DIR, findPython, PYTHON_SHIM_DIR } from './runtime/launcher.js';
import { RuntimeManager } from './runtime/manager.js';
import { Sandboxes, type SandboxInfo } from './runtime/sandbox/sandbox.js';
import { type ConnectionStats, limitConnections } from './shared/connection-limits.js';
import { NimbusError } from './shared/errors.js';
import { isAlive } from './shared/processes.js';
import { StateEndpoint } from './state/endpoint.js';
import { ChangeRelay } from './state/relay.js';
import { StateStore } from './state/state-store.js';
import { SqliteStore } from './store/sqlite/sqlite-store.js';
import type { Store } from './store/store.js';
import { LogBuffer } from './telemetry/log-buffer.js';
import { NIMBUS_VERSION } from './version.js';

/** Where and how to run; the edge's options (EdgeOptions) are in docs/security.md. */
export interface PlatformOptions extends EdgeOptions {
  dataDir: string;
  host: string;
  port: number;
  adminPort: number;
  warmPoolSize?: number;
  /** Instances of all functions together, at most. */
  maxInstances?: number;
  /** Retry timing, queue limit and clock of the event queue (tests shorten them). */
  events?: EventsOptions;
  /**
   * auto (the default): every process instance runs in the sandbox; where there is none
   * (no bubblewrap), a platform bound to loopback runs instances as plain processes and
   * says so, and one that listens beyond loopback refuses to run them. off: plain
   * processes, whatever the machine has (`nimbus up --insecure-no-sandbox`).
   */
  sandbox?: 'auto' | 'off';
  /**
   * Lets functions run with isolation: thread, in worker threads of this process with no
   * sandbox (trusted code only). Off by default: such deploys get 403, and thread
   * functions already deployed run as processes.
   */
  allowThreadIsolation?: boolean;
  /** Resolves callback host names (default: the system's resolver); tests map names without DNS. */
  callbackLookup?: LookupFunction;
}

const LOCK_FILE = 'nimbus.pid';

/**
 * The whole platform in one process: store, bundle store, runtime, gateway and admin
 * API. start() is the only way in; stop() drains and is idempotent.
 */
export class Platform {
  readonly dataDir: string;
  readonly tokenFile: string;
  readonly token: string;
  readonly tokenCreated: boolean;
  readonly store: Store;
  readonly registry: FunctionRegistry;
  readonly runtime: RuntimeManager;
  readonly logs: LogBuffer;
  readonly events: Events;
  /** KV namespaces and buckets. */
  readonly state: StateStore;
  /** Where functions reach their bindings (over each instance's own channel, a token per instance). */
  readonly stateEndpoint: StateEndpoint;
  readonly #relay: ChangeRelay;
  /** What isolates instances here (GET /v1/info, `nimbus ls`, the start banner). */
  readonly sandbox: SandboxInfo;
  /** Open and refused connections of each server (src/shared/connection-limits.ts). */
  readonly connections: { gateway: ConnectionStats; admin: ConnectionStats };
  gatewayUrl = '';
  adminUrl = '';
  #gateway: Server;
  #admin: Server;
  readonly #adminHosts: AdminHosts;
  #draining = false;
  #stopping: Promise<void> | undefined;

  private constructor(opts: PlatformOptions) {
    // Options are checked before anything is opened or locked.
    const edge = resolveEdge(opts);
    const callbackPolicy = new CallbackPolicy(edge.callbackAllow, opts.callbackLookup);
    this.#adminHosts = new AdminHosts(edge.adminHosts);
    this.dataDir = resolve(opts.dataDir);
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    acquireLock(this.dataDir);
    try {
      this.tokenFile = join(this.dataDir, TOKEN_FILE);
      ({ token: this.token, created: this.tokenCreated } = loadOrCreateToken(this.tokenFile));
      this.store = new SqliteStore(join(this.dataDir, 'nimbus.db'));
      const artifacts = new ArtifactStore(join(this.dataDir, 'bundles'));
      const repaired = repairBundles(this.store, artifacts);
      if (repaired.migrated.length > 0)
        process.stderr.write(`nimbus: moved ${repaired.migrated.length} bundle(s) to the layout without manifests (env values now only in nimbus.db)\n`);
      this.logs = new LogBuffer(this.store);
      this.state = new StateStore(this.dataDir);
      const sandbox = openSandbox(this.dataDir, opts);
      this.sandbox = sandbox.info;
      this.runtime = new RuntimeManager({
        sandboxes: sandbox.sandboxes,
        refuseUnsandboxed: sandbox.refuse,
        credentials: async (spec) => this.stateEndpoint.issue(spec.name, spec.bindings),
        onTunnel: (_instance, socket) => this.stateEndpoint.accept(socket),
        codeRoot: artifacts.root,
        warmPoolSize: opts.warmPoolSize ?? DEFAULT_WARM_POOL_SIZE,
        maxInstances: opts.maxInstances,
        onLog: (owner, log) => {
          if (owner) this.logs.add({ name: owner.name, version: owner.version, requestId: log.requestId, stream: log.stream, ts: Date.now(), line: log.line });
          else if (log.line) process.stderr.write(`nimbus: generic instance: ${log.line}\n`);
        },
      });
      this.registry = new FunctionRegistry(this.store, artifacts, this.runtime, { allowThreadIsolation: opts.allowThreadIsolation });
      const callDeps = { registry: this.registry, runtime: this.runtime, isDraining: () => this.#draining };
      this.events = new Events(new SqliteQueue(join(this.dataDir, 'events.db')), callDeps, { ...opts.events, callbackPolicy });
      this.registry.onRemoved = (name) => this.events.removeFunction(name);
      this.registry.onChanged = () => {
        this.events.functionsChanged().catch((err: unknown) => console.error('nimbus: updating schedules failed:', err));
      };
      this.stateEndpoint = new StateEndpoint({ state: this.state, events: this.events });
      this.#relay = new ChangeRelay(this.state, this.events);
      this.state.onChange = () => this.#relay.kick();
      this.#gateway = createGateway({
        ...callDeps,
        token: this.token,
        store: this.store,
        logs: this.logs,
        events: this.events,
        adminUrl: () => this.adminUrl,
        lambdaBodyBudget: new ByteBudget(edge.lambdaUnverifiedBodyBytes),
      });
      // Separate budgets: a flood of the gateway leaves the admin API its own connections.
      const gatewayConnections = limitConnections(this.#gateway, edge.gateway);
      this.#admin = createAdminServer({
        token: this.token,
        hosts: this.#adminHosts,
        store: this.store,
        registry: this.registry,
        runtime: this.runtime,
        logs: this.logs,
        events: this.events,
        state: this.state,
        info: () => ({ version: NIMBUS_VERSION, gatewayUrl: this.gatewayUrl, adminUrl: this.adminUrl, dataDir: this.dataDir, sandbox: this.sandbox }),
      });
      this.connections = { gateway: gatewayConnections, admin: limitConnections(this.#admin, edge.admin) };
    } catch (err) {
      releaseLock(this.dataDir);
      throw err;
    }
  }

  static async start(opts: PlatformOptions): Promise<Platform> {
    const platform = new Platform(opts);
    try {
      await platform.events.start();
      platform.#relay.kick();
      platform.gatewayUrl = await listen(platform.#gateway, opts.host, opts.port, 'gateway');
      platform.adminUrl = await listen(platform.#admin, opts.host, opts.adminPort, 'admin API');
      platform.#adminHosts.bind(opts.host, (platform.#admin.address() as AddressInfo).port);
    } catch (err) {
      await platform.stop();
      throw err;
    }
    const info: RuntimeInfo = { pid: process.pid, gatewayUrl: platform.gatewayUrl, adminUrl: platform.adminUrl };
    writeFileSync(join(platform.dataDir, RUNTIME_FILE), `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
    return platform;
  }

  /** Stops intake, lets in-flight requests finish, stops every instance, closes the store. */
  stop(drainMs = SHUTDOWN_DRAIN_TIMEOUT_MS): Promise<void> {
    this.#stopping ??= this.#stop(drainMs);
    return this.#stopping;
  }

  async #stop(drainMs: number): Promise<void> {
    this.#draining = true;
    const gatewayClosed = close(this.#gateway);
    const timer = setTimeout(() => this.#gateway.closeAllConnections(), drainMs);
    await gatewayClosed;
    clearTimeout(timer);
    // Deliveries under way get the drain time too; any cut short are delivered again after a restart.
    await this.events.stop(drainMs);
    await this.#relay.stop();
    this.#admin.closeAllConnections();
    await close(this.#admin);
    await this.runtime.dispose();
    this.stateEndpoint.close();
    await this.events.close();
    this.state.close();
    this.logs.close();
    this.store.close();
    rmSync(join(this.dataDir, RUNTIME_FILE), { force: true });
    releaseLock(this.dataDir);
  }
}

/** Loopback addresses: a platform bound to one of these is reachable from this machine only. */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/**
 * The sandbox for this platform, or why there is none and whether instances may run
 * without it: only on a platform bound to loopback (a developer's own machine), or when
 * the operator said so (docs/security.md).
 */
export function openSandbox(
  dataDir: string,
  opts: Pick<PlatformOptions, 'host' | 'sandbox'>,
  open: typeof Sandboxes.open = (o) => Sandboxes.open(o),
): { sandboxes?: Sandboxes; info: SandboxInfo; refuse?: string } {
  const none = (reason: string): SandboxInfo => ({ kind: 'none', reason, users: 'platform', limits: 'rlimit', network: 'none', seccomp: false });
  if (opts.sandbox === 'off') return { info: none('turned off by the operator (--insecure-no-sandbox)') };
  const loopbackOnly = LOOPBACK_HOSTS.has(opts.host) || /^127\./.test(opts.host);
  const opened = open({
    stateDir: join(dataDir, 'sandbox'),
    nodeShimDir: DIST_SRC_DIR,
    pythonShimDir: PYTHON_SHIM_DIR,
    executables: [process.execPath, findPython()],
    hostNetworkFallback: loopbackOnly,
  });
  if (typeof opened !== 'string') return { sandboxes: opened, info: opened.info };
  if (loopbackOnly) return { info: none(opened) };
  return {
    info: none(opened),
    refuse: `the platform listens on ${opts.host}, beyond loopback, and cannot sandbox instances here (${opened}); start it with --insecure-no-sandbox to run functions anyway`,
  };
}

function listen(server: Server, host: string, port: number, what: string): Promise<string> {
  return new Promise((resolveListen, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const hint = err.code === 'EADDRINUSE' ? `port ${port} is in use; pass a different --${what === 'gateway' ? 'port' : 'admin-port'}` : undefined;
      reject(new NimbusError('NIMBUS_INVALID_ARGUMENT', `the ${what} cannot listen on ${host}:${port}: ${err.message}`, { hint }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const { port: bound } = server.address() as AddressInfo;
      resolveListen(`http://${host.includes(':') ? `[${host}]` : host}:${bound}`);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((done) => {
    if (!server.listening) return done();
    server.close(() => done());
    server.closeIdleConnections();
  });
}

/** The admin token: made on first start, readable only by its owner. */
function loadOrCreateToken(file: string): { token: string; created: boolean } {
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token) {
      chmodSync(file, 0o600);
      return { token, created: false };
    }
  }
  const token = `nimbus_admin_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, created: true };
}

/** One platform per data dir: a pid file, taken over only when its process is gone. */
function acquireLock(dataDir: string): void {
  const file = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new NimbusError('NIMBUS_ALREADY_RUNNING', `a platform (pid ${pid}) is already running on ${dataDir}`);
      }
      rmSync(file, { force: true });
    }
  }
  throw new NimbusError('NIMBUS_ALREADY_RUNNING', `could not lock ${dataDir}`);
}

function releaseLock(dataDir: string): void {
  const file = join(dataDir, LOCK_FILE);
  try {
    if (Number(readFileSync(file, 'utf8').trim()) === process.pid) rmSync(file, { force: true });
  } catch {
    // Already gone.
  }
}
