import { isIP } from 'node:net';
import { z } from 'zod';
import { type ConnectionLimits, openFileLimit } from '../shared/connection-limits.js';
import { NimbusError } from '../shared/errors.js';
import {
  DEFAULT_ADMIN_MAX_CONNECTIONS,
  DEFAULT_ADMIN_MAX_CONNECTIONS_PER_CLIENT,
  DEFAULT_GATEWAY_MAX_CONNECTIONS,
  DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_CLIENT,
  GATEWAY_MAX_SHARE_OF_FD_LIMIT,
  MAX_CONNECTIONS_LIMIT,
} from './defaults.js';

/** The platform's options for its edge (docs/security.md); every field may be left out. */
export interface EdgeOptions {
  connections?: { gateway?: Partial<ConnectionLimits>; admin?: Partial<ConnectionLimits> };
  /** Host names the admin API answers to besides its own address and loopback (`nimbus up --admin-host`). */
  adminHosts?: string[];
}

/** The same, validated, with the defaults filled in; frozen. */
export interface EdgeConfig {
  gateway: Readonly<ConnectionLimits>;
  admin: Readonly<ConnectionLimits>;
  adminHosts: readonly string[];
}

const count = z
  .number({ invalid_type_error: 'must be a number' })
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(MAX_CONNECTIONS_LIMIT, `must be at most ${MAX_CONNECTIONS_LIMIT}`);
const limits = z.object({ total: count.optional(), perClient: count.optional() }).strict();
const adminHost = z.string({ invalid_type_error: 'must be a host name' }).superRefine((value, ctx) => {
  const problem = adminHostProblem(value);
  if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
});
const schema = z
  .object({
    connections: z.object({ gateway: limits.optional(), admin: limits.optional() }).strict().optional(),
    adminHosts: z.array(adminHost).optional(),
  })
  .passthrough();

/**
 * Validates the edge options once, reporting every problem together (each naming the
 * option, the value and what is allowed), and fills in the defaults. The gateway's
 * default total stays within half the open-file limit, so that a flood of it leaves
 * descriptors for the admin API, the instances and the store.
 */
export function resolveEdge(opts: EdgeOptions, fdLimit = openFileLimit()): EdgeConfig {
  const parsed = schema.safeParse(opts);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message} (got ${JSON.stringify(valueAt(opts, i.path))})`);
  const c = opts.connections ?? {};
  const fdShare = fdLimit === undefined ? Number.POSITIVE_INFINITY : Math.max(1, Math.floor(fdLimit * GATEWAY_MAX_SHARE_OF_FD_LIMIT));
  const gateway = {
    total: c.gateway?.total ?? Math.min(DEFAULT_GATEWAY_MAX_CONNECTIONS, fdShare),
    perClient: c.gateway?.perClient ?? DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_CLIENT,
  };
  const admin = {
    total: c.admin?.total ?? DEFAULT_ADMIN_MAX_CONNECTIONS,
    perClient: c.admin?.perClient ?? DEFAULT_ADMIN_MAX_CONNECTIONS_PER_CLIENT,
  };
  if (problems.length > 0) {
    throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `invalid platform options: ${problems.join('; ')}`, {
      details: problems,
      hint: 'see docs/security.md#the-platforms-edge for each option and its range',
    });
  }
  // A per-client cap above the total would never be reached: the total is the cap then.
  gateway.perClient = Math.min(gateway.perClient, gateway.total);
  admin.perClient = Math.min(admin.perClient, admin.total);
  return Object.freeze({ gateway: Object.freeze(gateway), admin: Object.freeze(admin), adminHosts: Object.freeze([...(opts.adminHosts ?? [])]) });
}

function valueAt(value: unknown, path: (string | number)[]): unknown {
  return path.reduce<unknown>((v, key) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined), value);
}

/** "Host: name[:port]" split, lower case, brackets kept on IPv6; undefined if it is not one. */
export function splitHost(value: string): { name: string; port: number | undefined } | undefined {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]\s]+)(?::(\d{1,5}))?$/i.exec(value.trim());
  if (!m) return undefined;
  return { name: m[1].toLowerCase().replace(/\.$/, ''), port: m[2] === undefined ? undefined : Number(m[2]) };
}

export const isIpLiteral = (name: string) => isIP(name.replace(/^\[(.*)\]$/, '$1')) !== 0;

/** An operator's --admin-host value: a host name or IP literal (IPv6 in brackets), optionally with a port. */
export function adminHostProblem(value: string): string | undefined {
  const h = splitHost(value);
  const valid = h && (isIpLiteral(h.name) || /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(h.name)) && (h.port ?? 1) <= 65_535;
  return valid ? undefined : `${JSON.stringify(value)} is not a host name, IP address or name:port`;
}
