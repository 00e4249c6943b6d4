import { z } from 'zod';
import { NimbusError } from '../shared/errors.js';
import {
  DEFAULT_CONCURRENCY,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_EVENT_AGE_MS,
  DEFAULT_MEMORY_MB,
  DEFAULT_PIDS,
  DEFAULT_RETRIES,
  DEFAULT_SCALE_MAX,
  DEFAULT_SCALE_MIN,
  DEFAULT_SCALE_WINDOW_MS,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_TMP_MB,
  DEFAULT_UTILIZATION_PERCENT,
  MAX_ENV_BYTES,
  MAX_EVENT_AGE_MS,
  MAX_MEMORY_MB,
  MAX_NETWORK_ALLOW,
  MAX_PIDS,
  MAX_RETRIES,
  MAX_SCALE_WINDOW_MS,
  MAX_TIMEOUT_MS,
  MAX_TMP_MB,
  MIN_EVENT_AGE_MS,
  MIN_MEMORY_MB,
  MIN_PIDS,
  MIN_SCALE_WINDOW_MS,
  MIN_TMP_MB,
} from './defaults.js';
import { bindingsSchema, triggersSchema } from './triggers.js';

/** Handler styles of the node runtime; see docs/runtime.md#handler-styles. */
export const NODE_STYLES = ['workers', 'lambda', 'openfaas', 'gcf', 'vercel', 'fission', 'azure', 'netlify', 'openwhisk', 'knative', 'fn'] as const;
export type NodeStyle = (typeof NODE_STYLES)[number];
/** Handler styles of the python runtime. */
export const PYTHON_STYLES = ['lambda', 'openfaas', 'openfaas-classic', 'wsgi'] as const;
/** How a program runs under runtime: process. */
export const PROCESS_STYLES = ['http', 'stdio', 'lambda-runtime'] as const;
const STYLE_MESSAGE = `style must be one of ${NODE_STYLES.join(', ')} for runtime node, ${PYTHON_STYLES.join(', ')} for runtime python, or ${PROCESS_STYLES.join(', ')} for runtime process (or left out to detect it)`;

/** What an instance runs in (docs/runtime.md#thread-isolation). */
export const ISOLATIONS = ['process', 'thread'] as const;
const ISOLATION_MESSAGE =
  'isolation must be "process" (each instance its own sandboxed process, the default) or "thread" (a worker thread in the platform\'s process: runtime node, trusted code only)';

/** 1-63 characters, lower-case letters, digits and "-": safe in URLs, paths and DNS labels. */
export const FUNCTION_NAME_PATTERN = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function validateFunctionName(name: unknown): string {
  if (typeof name !== 'string' || !FUNCTION_NAME_PATTERN.test(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name) : String(name);
    throw new NimbusError(
      'NIMBUS_INVALID_NAME',
      `invalid function name ${shown}: use 1-63 of a-z, 0-9 and "-", starting with a letter and not ending with "-"`,
    );
  }
  return name;
}

/** Decodes a function name taken from a URL path and validates it; bad escapes are a bad name. */
export function functionNameFromPath(segment: string): string {
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    throw new NimbusError('NIMBUS_INVALID_NAME', `invalid function name ${JSON.stringify(segment.slice(0, 80))} (malformed %-escape)`);
  }
  return validateFunctionName(name);
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** A duration: a number of seconds, or a string such as "500ms", "30s", "5m". Parsed to milliseconds. */
function duration(field: string, minMs: number, maxMs: number) {
  return z.union([z.number(), z.string()]).transform((value, ctx) => {
    let ms: number;
    if (typeof value === 'number') ms = value * 1_000;
    else {
      const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(value.trim());
      if (!match) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `${field} must be seconds or a duration such as "500ms", "30s", "5m"`,
        });
        return z.NEVER;
      }
      ms = Number(match[1]) * DURATION_UNITS_MS[match[2] ?? 's'];
    }
    if (!Number.isFinite(ms) || ms < minMs || ms > maxMs) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${field} must be between ${minMs / 1000}s and ${maxMs / 1000}s` });
      return z.NEVER;
    }
    return Math.round(ms);
  });
}

/** What an env variable's (and a secret's) name may be. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Names the platform keeps for its own variables. */
export const RESERVED_ENV_PREFIX = 'NIMBUS_';

const envSchema = z
  .record(z.union([z.string(), z.number(), z.boolean()], { errorMap: () => ({ message: 'env values must be strings, numbers or booleans' }) }))
  .transform((env, ctx) => {
    const out: Record<string, string> = {};
    let bytes = 0;
    for (const [key, value] of Object.entries(env)) {
      if (!ENV_NAME_PATTERN.test(key)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `env name ${JSON.stringify(key)} must match ${ENV_NAME_PATTERN}` });
        continue;
      }
      if (key.startsWith(RESERVED_ENV_PREFIX)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `env name ${JSON.stringify(key)} uses the reserved prefix ${RESERVED_ENV_PREFIX}` });
        continue;
      }
      out[key] = String(value);
      bytes += Buffer.byteLength(key) + Buffer.byteLength(out[key]);
    }
    if (bytes > MAX_ENV_BYTES) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `env holds ${bytes} bytes; at most ${MAX_ENV_BYTES} are allowed` });
    }
    return out;
  });

/** An IPv4 range, "10.1.2.0/24" or one address "10.1.2.3" (a /32). */
const IPV4_CIDR = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}(\/(3[0-2]|[12]?\d))?$/;

/**
 * What the function may reach: `none` (its own loopback only), `outbound` (the
 * internet, not the host, private or link-local ranges; the default), or
 * { outbound, allow: [ranges] } to reach some private ranges as well (docs/security.md).
 */
const networkSchema = z
  .union(
    [
      z.enum(['none', 'outbound']),
      z
        .object({
          outbound: z.boolean({ invalid_type_error: 'network.outbound must be true or false' }).default(true),
          allow: z
            .array(z.string().regex(IPV4_CIDR, 'network.allow entries must be IPv4 addresses or ranges such as 10.1.0.0/16'))
            .max(MAX_NETWORK_ALLOW, `network.allow takes at most ${MAX_NETWORK_ALLOW} ranges`)
            .default([]),
        })
        .strict(),
    ],
    { errorMap: () => ({ message: 'network must be "none", "outbound", or { outbound: true, allow: [ranges] }' }) },
  )
  .transform((n, ctx) => {
    const policy = typeof n === 'string' ? { outbound: n === 'outbound', allow: [] as string[] } : n;
    const allow = policy.allow.map((r) => (r.includes('/') ? r : `${r}/32`));
    if (!policy.outbound && allow.length > 0) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['allow'], message: 'network.allow needs outbound: true' });
    for (const range of allow) {
      if (range.startsWith('127.')) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['allow'],
          message: `${range}: the host's loopback is never reachable from a function; serve what it needs on another address and allow that`,
        });
      }
    }
    return { outbound: policy.outbound, allow };
  });

const int = (field: string, min: number, max: number) =>
  z
    .number({ invalid_type_error: `${field} must be a whole number` })
    .int(`${field} must be a whole number`)
    .min(min, `${field} must be at least ${min}`)
    .max(max, `${field} must be at most ${max}`);

export const manifestSchema = z
  .object({
    name: z.string().regex(FUNCTION_NAME_PATTERN, 'name must be 1-63 characters of a-z, 0-9 and "-", starting with a letter').optional(),
    runtime: z.enum(['node', 'python', 'process'], { errorMap: () => ({ message: 'runtime must be "node", "python" or "process"' }) }).default('node'),
    /** What each instance runs in: its own sandboxed process, or a worker thread of the platform (trusted JavaScript only). */
    isolation: z.enum(ISOLATIONS, { errorMap: () => ({ message: ISOLATION_MESSAGE }) }).default('process'),
    handler: z
      .string()
      .min(1)
      .max(256)
      .refine((h) => !h.split('/').includes('..') && !h.startsWith('/'), 'handler must be a relative path inside the function folder')
      .optional(),
    style: z.enum([...NODE_STYLES, ...PYTHON_STYLES, ...PROCESS_STYLES], { errorMap: () => ({ message: STYLE_MESSAGE }) }).optional(),
    command: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
        errorMap: () => ({ message: 'command must be a string (run by /bin/sh) or a list of arguments' }),
      })
      .optional(),
    payloadFormat: z
      .union([z.literal('1.0'), z.literal('2.0'), z.literal(1), z.literal(2)], {
        errorMap: () => ({ message: 'payloadFormat must be "1.0" (REST API events) or "2.0" (HTTP API / function URL events)' }),
      })
      .transform((v): '1.0' | '2.0' => (String(v) === '1' || v === '1.0' ? '1.0' : '2.0'))
      .optional(),
    env: envSchema.default({}),
    memory: int('memory (MB)', MIN_MEMORY_MB, MAX_MEMORY_MB).default(DEFAULT_MEMORY_MB),
    timeout: duration('timeout', 100, MAX_TIMEOUT_MS).default(DEFAULT_TIMEOUT_MS / 1000),
    /** The function's private /tmp in MB: a tmpfs, so what it holds counts toward memory. */
    tmp: int('tmp (MB)', MIN_TMP_MB, MAX_TMP_MB).default(DEFAULT_TMP_MB),
    /** Processes and threads an instance may have at once. */
    pids: int('pids', MIN_PIDS, MAX_PIDS).default(DEFAULT_PIDS),
    network: networkSchema.default('outbound'),
    scale: z
      .object({
        min: int('scale.min', 0, 100).default(DEFAULT_SCALE_MIN),
        max: int('scale.max', 1, 1_000).default(DEFAULT_SCALE_MAX),
        concurrency: int('scale.concurrency', 1, 1_000).default(DEFAULT_CONCURRENCY),
        idleTimeout: duration('scale.idleTimeout', 100, 86_400_000).default(DEFAULT_IDLE_TIMEOUT_MS / 1000),
        window: duration('scale.window', MIN_SCALE_WINDOW_MS, MAX_SCALE_WINDOW_MS).default(DEFAULT_SCALE_WINDOW_MS / 1000),
        utilization: int('scale.utilization (%)', 10, 100).default(DEFAULT_UTILIZATION_PERCENT),
      })
      .strict()
      .default({})
      .refine((s) => s.min <= s.max, { message: 'scale.min must not exceed scale.max', path: ['min'] }),
    /** Asynchronous events (async invokes, triggers): retries after the first attempt, and how old an event may get. */
    retries: int('retries', 0, MAX_RETRIES).default(DEFAULT_RETRIES),
    maxEventAge: duration('maxEventAge', MIN_EVENT_AGE_MS, MAX_EVENT_AGE_MS).default(DEFAULT_MAX_EVENT_AGE_MS / 1000),
    /** What runs the function besides HTTP: cron schedules, topic subscriptions, bucket changes (docs/events.md). */
    triggers: triggersSchema,
    /** env.<NAME> for the function: KV namespaces, buckets, topics (docs/state.md). */
    bindings: bindingsSchema,
  })
  .strict()
  .superRefine((m, ctx) => {
    const allowed: readonly string[] = m.runtime === 'python' ? PYTHON_STYLES : m.runtime === 'process' ? PROCESS_STYLES : NODE_STYLES;
    if (m.style !== undefined && !allowed.includes(m.style)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['style'], message: STYLE_MESSAGE });
    if (m.runtime === 'process' && m.command === undefined && m.style !== 'lambda-runtime') {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['command'],
        message: 'runtime process needs command (e.g. command: ./server.sh), or style: lambda-runtime with an executable bootstrap',
      });
    }
    if (m.isolation === 'thread' && m.runtime !== 'node') {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['isolation'],
        message: `isolation thread runs JavaScript in a worker thread of the platform, so it needs runtime node; runtime ${m.runtime} runs as a process (use isolation: process, the default)`,
      });
    }
    if (m.runtime !== 'process' && m.command !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['command'], message: 'command is only used with runtime: process' });
    }
    for (const name of Object.keys(m.bindings)) {
      if (name in m.env)
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['bindings', name], message: `${name} is both an env variable and a binding: rename one` });
    }
  });

export type Manifest = z.output<typeof manifestSchema>;
export type ManifestInput = z.input<typeof manifestSchema>;

/** Field names per object, for "unknown field" messages (keyed by the top-level field; '' is the root). */
const ALLOWED_FIELDS: Record<string, string> = {
  '': 'name, runtime, isolation, handler, style, command, payloadFormat, env, memory, timeout, tmp, pids, network, scale, retries, maxEventAge, triggers, bindings',
  network: 'outbound, allow',
  scale: 'min, max, concurrency, idleTimeout, window, utilization',
  triggers: 'cron, topics, buckets (each entry: cron { schedule, timezone }, topics { topic, batchSize }, buckets { bucket, events, prefix })',
  bindings: 'kv, bucket or topic (one per binding)',
};

/** One problem in a manifest: which field, what value it had, what is allowed. */
export interface ManifestProblem {
  field: string;
  value: unknown;
  message: string;
}

/**
 * Validates a parsed manifest and reports every problem at once.
 * @example parseManifest({ name: 'hello', memory: 512 }) // → frozen Manifest with defaults filled in
 */
export function parseManifest(input: unknown, source = 'nimbus.yaml'): Manifest {
  const result = manifestSchema.safeParse(input ?? {});
  if (result.success) return deepFreeze(result.data);
  const problems: ManifestProblem[] = result.error.issues.flatMap((issue): ManifestProblem[] => {
    if (issue.code === 'unrecognized_keys') {
      const allowed = ALLOWED_FIELDS[issue.path.length === 0 ? '' : String(issue.path[0])] ?? 'see docs/manifest.md';
      return issue.keys.map((key) => ({
        field: [...issue.path, key].join('.'),
        value: valueAt(input, [...issue.path, key]),
        message: `unknown field; allowed here: ${allowed}`,
      }));
    }
    return [{ field: issue.path.join('.') || '(root)', value: valueAt(input, issue.path), message: issue.message }];
  });
  const lines = problems.map((p) => `\n  - ${p.field}: ${p.message} (got ${JSON.stringify(p.value)})`).join('');
  throw new NimbusError('NIMBUS_INVALID_MANIFEST', `${source} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:${lines}`, {
    details: problems,
  });
}

/** The value a problem is about, as the message may show it: env values never (only their names). */
function valueAt(input: unknown, path: (string | number)[]): unknown {
  let cur: unknown = input;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[key];
  }
  if (path[0] !== 'env' || cur === undefined) return cur;
  if (path.length === 1 && cur !== null && typeof cur === 'object' && !Array.isArray(cur)) return { names: Object.keys(cur) };
  return HIDDEN_VALUE;
}

/** What a message shows in place of an env value. */
const HIDDEN_VALUE = '(hidden)';

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
