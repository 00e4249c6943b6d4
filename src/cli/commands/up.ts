import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_ADMIN_PORT,
  DEFAULT_DATA_DIR,
  DEFAULT_GATEWAY_MAX_CONNECTIONS,
  DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_CLIENT,
  DEFAULT_GATEWAY_PORT,
  DEFAULT_HOST,
  DEFAULT_MAX_INSTANCES,
  DEFAULT_WARM_POOL_SIZE,
  MAX_CONNECTIONS_LIMIT,
} from '../../config/defaults.js';
import { adminHostProblem, cidrProblem } from '../../config/edge.js';
import type { Platform } from '../../platform.js';
import { NimbusError, toNimbusError } from '../../shared/errors.js';
import { NIMBUS_VERSION } from '../../version.js';
import type { Command } from '../command.js';
import { EXIT, print, table } from '../context.js';
import { describeSandbox } from '../describe-sandbox.js';

const EXAMPLES_DIR = fileURLToPath(new URL('../../../../examples/', import.meta.url));

function port(value: unknown, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `--${flag} must be a port number from 0 to 65535; got ${JSON.stringify(value)}`);
  return n;
}

/** A flag's whole number of connections, or undefined for the default. */
function count(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_CONNECTIONS_LIMIT)
    throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `--${flag} must be a whole number from 1 to ${MAX_CONNECTIONS_LIMIT}; got ${JSON.stringify(value)}`);
  return n;
}

/** A repeatable flag's values, each checked: every bad one is named. */
function checkedList(value: unknown, flag: string, problem: (v: string) => string | undefined): string[] {
  const values = list(value);
  const problems = values.map(problem).filter((p) => p !== undefined);
  if (problems.length > 0) throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `--${flag}: ${problems.join('; ')}`);
  return values;
}

/** A repeatable flag's values. */
const list = (value: unknown): string[] => (Array.isArray(value) ? value.map(String) : []);

export const up: Command = {
  name: 'up',
  summary: 'run the platform in the foreground (gateway, admin API, runtime)',
  usage: `Usage: nimbus up [options]

Runs the platform until Ctrl-C or SIGTERM, which drain in-flight requests and exit 0.

Options:
  --port <n>          gateway port (default ${DEFAULT_GATEWAY_PORT}; 0 picks a free one)
  --admin-port <n>    admin API port (default ${DEFAULT_ADMIN_PORT}; 0 picks a free one)
  --host <addr>       address both listen on (default ${DEFAULT_HOST})
  --data-dir <dir>    state: SQLite database, bundles, admin token (default ./${DEFAULT_DATA_DIR})
  --examples          also deploy every function under the package's examples/ folder
  --warm-pool <n>     pre-started generic instances (default ${DEFAULT_WARM_POOL_SIZE})
  --max-instances <n> instances of all functions together (default ${DEFAULT_MAX_INSTANCES}); at the limit
                      idle instances of other functions make room, else requests wait
  --insecure-no-sandbox
                      run instances as plain processes, without the sandbox (docs/security.md);
                      only for trusted code on a machine without bubblewrap
  --allow-thread-isolation
                      let functions deploy with isolation: thread: worker threads in this
                      process, with no sandbox. Not a security boundary: trusted code only.
                      Without it such deploys get NIMBUS_THREAD_ISOLATION_DISABLED and
                      thread functions already deployed run as processes
  --max-connections <n>
                      open gateway connections, from all clients (default ${DEFAULT_GATEWAY_MAX_CONNECTIONS},
                      at most half the open-file limit); past it, 503 and closed
  --max-connections-per-client <n>
                      open gateway connections from one IP address (default
                      ${DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_CLIENT}); behind a proxy, raise it to --max-connections
  --admin-host <name> also answer admin requests whose Host is this name (or name:port),
                      e.g. the name of a proxy in front; repeatable. The admin API
                      answers only to its address, localhost, 127.0.0.1 and [::1]
  --callback-allow <cidr>
                      let X-Callback-Url results reach this loopback, private or
                      reserved range (e.g. 127.0.0.1/32); repeatable. Default: public
                      addresses only
  --json              print the URLs as one JSON line once ready`,
  options: {
    port: { type: 'string' },
    'admin-port': { type: 'string' },
    host: { type: 'string' },
    examples: { type: 'boolean' },
    'warm-pool': { type: 'string' },
    'max-instances': { type: 'string' },
    'insecure-no-sandbox': { type: 'boolean' },
    'allow-thread-isolation': { type: 'boolean' },
    'max-connections': { type: 'string' },
    'max-connections-per-client': { type: 'string' },
    'callback-allow': { type: 'string', multiple: true },
    'admin-host': { type: 'string', multiple: true },
  },
  async run(_positionals, values) {
    const warm = values['warm-pool'] === undefined ? DEFAULT_WARM_POOL_SIZE : Number(values['warm-pool']);
    if (!Number.isInteger(warm) || warm < 0 || warm > 64)
      throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `--warm-pool must be a whole number from 0 to 64; got ${JSON.stringify(values['warm-pool'])}`);
    const maxInstances = values['max-instances'] === undefined ? DEFAULT_MAX_INSTANCES : Number(values['max-instances']);
    if (!Number.isInteger(maxInstances) || maxInstances < 1 || maxInstances > 100_000)
      throw new NimbusError(
        'NIMBUS_INVALID_ARGUMENT',
        `--max-instances must be a whole number from 1 to 100000; got ${JSON.stringify(values['max-instances'])}`,
      );
    // One bad callback must not take every function down with it: log and carry on.
    process.on('uncaughtException', (err) => process.stderr.write(`nimbus: uncaught error (the platform keeps running): ${err.stack ?? err}\n`));
    process.on('unhandledRejection', (err) => process.stderr.write(`nimbus: unhandled rejection (the platform keeps running): ${String(err)}\n`));
    // Loaded here, not at the top: every other command starts without the platform and esbuild.
    const { Platform } = await import('../../platform.js');
    const platform = await Platform.start({
      dataDir: String(values['data-dir'] ?? process.env.NIMBUS_DATA_DIR ?? DEFAULT_DATA_DIR),
      host: String(values.host ?? DEFAULT_HOST),
      port: port(values.port, 'port', DEFAULT_GATEWAY_PORT),
      adminPort: port(values['admin-port'], 'admin-port', DEFAULT_ADMIN_PORT),
      warmPoolSize: warm,
      maxInstances,
      sandbox: values['insecure-no-sandbox'] === true ? 'off' : 'auto',
      allowThreadIsolation: values['allow-thread-isolation'] === true,
      callbackAllow: checkedList(values['callback-allow'], 'callback-allow', cidrProblem),
      adminHosts: checkedList(values['admin-host'], 'admin-host', adminHostProblem),
      connections: {
        gateway: {
          total: count(values['max-connections'], 'max-connections'),
          perClient: count(values['max-connections-per-client'], 'max-connections-per-client'),
        },
      },
    });
    const json = values.json === true;
    const deployed = values.examples ? await deployExamples(platform, json) : [];
    const rel = relative(process.cwd(), platform.tokenFile);
    const tokenPath = rel && !rel.startsWith('..') ? rel : platform.tokenFile;
    if (json) {
      print(
        JSON.stringify({
          gatewayUrl: platform.gatewayUrl,
          adminUrl: platform.adminUrl,
          dataDir: platform.dataDir,
          tokenFile: platform.tokenFile,
          pid: process.pid,
          sandbox: platform.sandbox,
          functions: deployed.map(({ suggested, ...d }) => (suggested ? { ...d, example: { method: suggested.method, url: `${d.url}${suggested.path}` } } : d)),
        }),
      );
    } else {
      print(`Nimbus ${NIMBUS_VERSION} is running (pid ${process.pid})`);
      print(`  gateway  ${platform.gatewayUrl}/fn/<name>`);
      print(`  admin    ${platform.adminUrl}  (token in ${tokenPath}${platform.tokenCreated ? ', created now, readable only by you' : ''})`);
      print(`  data     ${platform.dataDir}`);
      print(`  sandbox  ${describeSandbox(platform.sandbox)}`);
      if (values['allow-thread-isolation'] === true)
        print('  threads  allowed: functions with isolation: thread run in this process, unsandboxed (trusted code only)');
      if (deployed.length > 0) {
        print('');
        print('Example functions:');
        print(table(deployed.map((d) => [`  ${d.name}`, d.url ? tryIt(d) : `failed: ${d.error}`])));
      }
      print('');
      print('Deploy your own: nimbus init hello --template typescript && nimbus deploy hello');
      print('Press Ctrl-C to stop.');
    }
    return await waitForSignal(platform, json);
  },
};

interface DeployedExample {
  name: string;
  url?: string;
  error?: string;
  /** The request the example's source suggests (its first "GET /fn/<name>/..." line). */
  suggested?: { method: string; path: string };
}

/** An example's URL as its source suggests trying it: with its path and query, and the method when not GET. */
function tryIt(d: DeployedExample): string {
  if (!d.suggested) return d.url as string;
  const url = `${d.url}${d.suggested.path}`;
  return d.suggested.method === 'GET' ? url : `${url}  (${d.suggested.method})`;
}

/** The first "METHOD /fn/<name>[/path][?query]" an example's source files mention. */
function suggestedRequest(dir: string, name: string): DeployedExample['suggested'] {
  const pattern = new RegExp(`\\b(GET|POST|PUT|DELETE) /fn/${name}((?:[/?][^\\s"'\`]*)?)`);
  for (const file of readdirSync(dir).sort()) {
    if (!/\.(m?js|cjs|ts|py)$/.test(file)) continue;
    let source: string;
    try {
      source = readFileSync(join(dir, file), 'utf8');
    } catch {
      continue; // a folder named like a file, or unreadable: the plain URL will do
    }
    const m = pattern.exec(source);
    if (m) return { method: m[1], path: m[2].replace(/[.,;:]+$/, '') };
  }
  return undefined;
}

async function deployExamples(platform: Platform, quiet: boolean): Promise<DeployedExample[]> {
  const { buildFunction, stopBuilder } = await import('../../build/bundle.js');
  const out: DeployedExample[] = [];
  let dirs: string[] = [];
  try {
    dirs = readdirSync(EXAMPLES_DIR)
      .filter((d) => statSync(join(EXAMPLES_DIR, d)).isDirectory())
      .sort();
  } catch {
    return out;
  }
  for (const dir of dirs) {
    try {
      const built = await buildFunction(join(EXAMPLES_DIR, dir));
      await platform.registry.deploy(built.manifest.name, built.zip);
      const name = built.manifest.name;
      out.push({ name, url: `${platform.gatewayUrl}/fn/${name}`, suggested: suggestedRequest(join(EXAMPLES_DIR, dir), name) });
    } catch (err) {
      const e = toNimbusError(err);
      if (!quiet) process.stderr.write(`nimbus: example ${dir} did not deploy: ${e.message}\n`);
      out.push({ name: dir, error: e.code });
    }
  }
  await stopBuilder();
  return out;
}

function waitForSignal(platform: Platform, quiet: boolean): Promise<number> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      if (!quiet) process.stderr.write(`\n${signal}: draining in-flight requests and stopping instances…\n`);
      // A second signal while draining stops at once.
      process.once('SIGINT', () => process.exit(EXIT.FAILED));
      process.once('SIGTERM', () => process.exit(EXIT.FAILED));
      platform.stop().then(
        () => {
          if (!quiet) process.stderr.write('stopped.\n');
          resolve(EXIT.OK);
        },
        (err: unknown) => {
          process.stderr.write(`nimbus: error while stopping: ${String(err)}\n`);
          resolve(EXIT.FAILED);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
