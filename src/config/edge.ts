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
  LAMBDA_UNVERIFIED_BODY_BUDGET_BYTES,
  MAX_CONNECTIONS_LIMIT,
} from './defaults.js';

/** The platform's options for its edge (docs/security.md#the-platforms-edge); every field may be left out. */
export interface EdgeOptions {
  /** CIDRs X-Callback-Url results may reach although they are loopback, private or reserved (`nimbus up --callback-allow`). */
  callbackAllow?: string[];
  /** Host names the admin API answers to besides its own address and loopback (`nimbus up --admin-host`). */
  adminHosts?: string[];
  /** Open connections per server, in total and per client IP (`nimbus up --max-connections`, `--max-connections-per-client`). */
  connections?: { gateway?: Partial<ConnectionLimits>; admin?: Partial<ConnectionLimits> };
  /** Lambda API: bytes of bodies held at once before their signature can be checked. */
  lambdaUnverifiedBodyBytes?: number;
}

/** The same, validated, with the defaults filled in; frozen. */
export interface EdgeConfig {
  callbackAllow: readonly string[];
  adminHosts: readonly string[];
  gateway: Readonly<ConnectionLimits>;
  admin: Readonly<ConnectionLimits>;
  lambdaUnverifiedBodyBytes: number;
}

const count = z
  .number({ invalid_type_error: 'must be a number' })
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(MAX_CONNECTIONS_LIMIT, `must be at most ${MAX_CONNECTIONS_LIMIT}`);
const limits = z.object({ total: count.optional(), perClient: count.optional() }).strict();
/** A string the check accepts (it returns undefined) or describes the problem of. */
const checked = (check: (value: string) => string | undefined) =>
  z.string({ invalid_type_error: 'must be a string' }).superRefine((value, ctx) => {
    const problem = check(value);
    if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
  });
/** What is wrong with a --callback-allow value, or undefined. */
export function cidrProblem(value: string): string | undefined {
  const parsed = parseCidr(value);
  return typeof parsed === 'string' ? parsed : undefined;
}

const schema = z
  .object({
    callbackAllow: z.array(checked(cidrProblem)).optional(),
    adminHosts: z.array(checked(adminHostProblem)).optional(),
    connections: z.object({ gateway: limits.optional(), admin: limits.optional() }).strict().optional(),
    lambdaUnverifiedBodyBytes: z.number().int('must be a whole number of bytes').min(1, 'must be at least 1').optional(),
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
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message} (got ${JSON.stringify(valueAt(opts, i.path))})`);
    throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `invalid platform options: ${problems.join('; ')}`, {
      details: problems,
      hint: 'see docs/security.md#the-platforms-edge for each option and its range',
    });
  }
  const c = opts.connections ?? {};
  const fdShare = fdLimit === undefined ? Number.POSITIVE_INFINITY : Math.max(1, Math.floor(fdLimit * GATEWAY_MAX_SHARE_OF_FD_LIMIT));
  const gatewayTotal = c.gateway?.total ?? Math.min(DEFAULT_GATEWAY_MAX_CONNECTIONS, fdShare);
  const adminTotal = c.admin?.total ?? DEFAULT_ADMIN_MAX_CONNECTIONS;
  // A per-client cap above the total would never be reached: the total is the cap then.
  const gateway = { total: gatewayTotal, perClient: Math.min(c.gateway?.perClient ?? DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_CLIENT, gatewayTotal) };
  const admin = { total: adminTotal, perClient: Math.min(c.admin?.perClient ?? DEFAULT_ADMIN_MAX_CONNECTIONS_PER_CLIENT, adminTotal) };
  return Object.freeze({
    callbackAllow: Object.freeze([...(opts.callbackAllow ?? [])]),
    adminHosts: Object.freeze([...(opts.adminHosts ?? [])]),
    gateway: Object.freeze(gateway),
    admin: Object.freeze(admin),
    lambdaUnverifiedBodyBytes: opts.lambdaUnverifiedBodyBytes ?? LAMBDA_UNVERIFIED_BODY_BUDGET_BYTES,
  });
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

/** "10.0.0.0/8", "fd00::/8" or a bare address (one host); a message naming the value if it is not one. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | string {
  const [address, bits, ...rest] = text.trim().split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return `${JSON.stringify(text)} is not an IP address or CIDR`;
  const max = version === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : Number(bits);
  if (!/^\d+$/.test(bits ?? String(max)) || prefix > max) return `${JSON.stringify(text)}: the prefix length must be a whole number from 0 to ${max}`;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}
