import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RUNTIME_FILE, type RuntimeInfo, TOKEN_FILE } from '../config/data-files.js';
import { DEFAULT_DATA_DIR } from '../config/defaults.js';
import { type ErrorCode, isErrorCode, NimbusError } from '../shared/errors.js';

/** Exit codes every command uses (docs/cli.md). */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3, NOT_FOUND: 4 } as const;

export interface GlobalFlags {
  url?: string;
  token?: string;
  'data-dir'?: string;
  json?: boolean;
}

export const GLOBAL_OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface Target {
  adminUrl: string;
  token: string;
}

/**
 * Finds the platform and its token: flags first, then NIMBUS_URL / NIMBUS_TOKEN, then
 * the local data dir that `nimbus up` writes (runtime.json and admin-token).
 */
export function findTarget(flags: GlobalFlags): Target {
  const dataDir = resolve(flags['data-dir'] ?? process.env.NIMBUS_DATA_DIR ?? DEFAULT_DATA_DIR);
  let adminUrl = flags.url ?? process.env.NIMBUS_URL;
  let token = flags.token ?? process.env.NIMBUS_TOKEN;
  if (!adminUrl) {
    const file = join(dataDir, RUNTIME_FILE);
    if (existsSync(file)) adminUrl = (JSON.parse(readFileSync(file, 'utf8')) as RuntimeInfo).adminUrl;
  }
  if (!token) {
    const file = join(dataDir, TOKEN_FILE);
    if (existsSync(file)) token = readFileSync(file, 'utf8').trim();
  }
  if (!adminUrl) {
    throw new NimbusError('NIMBUS_PLATFORM_UNREACHABLE', `no running platform found (no --url, no NIMBUS_URL, nothing in ${dataDir})`);
  }
  if (!token) {
    throw new NimbusError('NIMBUS_AUTH_REQUIRED', `no admin token found (no --token, no NIMBUS_TOKEN, no ${join(dataDir, TOKEN_FILE)})`);
  }
  return { adminUrl: adminUrl.replace(/\/+$/, ''), token };
}

/** Calls the admin API; non-2xx answers become NimbusErrors with the server's code. */
export async function adminRequest(
  target: Target,
  method: string,
  path: string,
  body?: Uint8Array | ReadableStream,
  contentType?: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(`${target.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${target.token}`, ...(contentType ? { 'content-type': contentType } : {}), ...headers },
      body,
      ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
    } as RequestInit);
  } catch (err) {
    throw new NimbusError('NIMBUS_PLATFORM_UNREACHABLE', `cannot reach the platform at ${target.adminUrl} (${(err as Error).cause ?? (err as Error).message})`);
  }
  if (res.ok) return res;
  throw await errorFrom(res);
}

export async function errorFrom(res: Response): Promise<NimbusError> {
  const text = await res.text();
  try {
    const { error } = JSON.parse(text) as { error: { code: string; message: string; hint?: string; details?: unknown } };
    const code: ErrorCode = isErrorCode(error.code) ? error.code : 'NIMBUS_INTERNAL';
    return new NimbusError(code, error.message, { hint: error.hint, details: error.details });
  } catch {
    return new NimbusError('NIMBUS_INTERNAL', `HTTP ${res.status}: ${text.slice(0, 200)}`);
  }
}

export function exitCodeFor(err: NimbusError): number {
  switch (err.code) {
    case 'NIMBUS_INVALID_ARGUMENT':
      return EXIT.USAGE;
    case 'NIMBUS_PLATFORM_UNREACHABLE':
    case 'NIMBUS_AUTH_REQUIRED':
    case 'NIMBUS_AUTH_INVALID':
      return EXIT.UNREACHABLE;
    case 'NIMBUS_FUNCTION_NOT_FOUND':
    case 'NIMBUS_INVOCATION_NOT_FOUND':
    case 'NIMBUS_KEY_NOT_FOUND':
    case 'NIMBUS_OBJECT_NOT_FOUND':
    case 'NIMBUS_TOPIC_NOT_FOUND':
    case 'NIMBUS_SECRET_NOT_FOUND':
      return EXIT.NOT_FOUND;
    default:
      return EXIT.FAILED;
  }
}

/** Prints a progress line on a terminal for steps that take over a second. */
export async function withProgress<T>(label: string, quiet: boolean, work: () => Promise<T>): Promise<T> {
  if (quiet || !process.stderr.isTTY) return work();
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  const started = Date.now();
  let i = 0;
  let timer: NodeJS.Timeout | undefined;
  const delay = setTimeout(() => {
    timer = setInterval(() => {
      process.stderr.write(`\r${frames[i++ % frames.length]} ${label} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
    }, 100);
  }, 1_000);
  try {
    return await work();
  } finally {
    clearTimeout(delay);
    if (timer) {
      clearInterval(timer);
      process.stderr.write('\r\x1b[2K');
    }
  }
}

export function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Pads columns for human tables. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n');
}
