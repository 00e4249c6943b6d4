import { lookup as dnsLookup } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { parseCidr } from '../config/edge.js';
import { NimbusError } from '../shared/errors.js';

/**
 * Address ranges a callback may not reach unless the operator allows them: everything
 * that is not the public internet. One line each: [address, prefix, what it is].
 */
const REFUSED_RANGES: readonly (readonly [string, number, string])[] = [
  ['0.0.0.0', 8, 'unspecified ("this network")'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'shared address space (CGNAT)'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, '6to4 relay'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved (and broadcast)'],
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['64:ff9b:1::', 48, 'local-use NAT64'],
  ['100::', 64, 'discard-only'],
  ['2001::', 23, 'IETF protocol assignments (Teredo and others)'],
  ['2001:db8::', 32, 'documentation'],
  ['2002::', 16, '6to4'],
  ['fc00::', 7, 'unique local (private)'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local'],
  ['ff00::', 8, 'multicast'],
];

const familyOf = (address: string) => (isIP(address) === 6 ? 'ipv6' : 'ipv4');
const refused = new BlockList();
const ranges = REFUSED_RANGES.map(([address, prefix, what]) => {
  const one = new BlockList();
  one.addSubnet(address, prefix, familyOf(address));
  refused.addSubnet(address, prefix, familyOf(address));
  return { one, label: `${what}, ${address}/${prefix}` };
});

/** What a NAT64 address (64:ff9b::/96) or an IPv4-mapped one (::ffff:0:0/96) stands for: the IPv4 address inside. */
function embeddedIPv4(address: string): string | undefined {
  const m = /^(?:::ffff:|64:ff9b::)(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(address);
  if (!m) return undefined;
  if (m[1]) return m[1];
  const hi = Number.parseInt(m[2], 16);
  const lo = Number.parseInt(m[3], 16);
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

/** Which refused range holds the address, or undefined for a public one. */
function refusedRange(address: string): string | undefined {
  const v4 = embeddedIPv4(address);
  if (v4 !== undefined) return refusedRange(v4);
  const family = familyOf(address);
  if (!refused.check(address, family)) return undefined;
  return ranges.find((r) => r.one.check(address, family))?.label ?? 'reserved';
}

/**
 * Where X-Callback-Url results may go. Loopback, link-local, private, CGNAT,
 * unspecified, multicast, documentation and other reserved addresses are refused
 * unless an operator's CIDR (`nimbus up --callback-allow`) allows them. URLs are
 * checked when the request is accepted (IP literals and `localhost` names), and every
 * address a name resolves to is checked again when the callback connects, so a name
 * that resolves to 127.0.0.1, today or after a rebinding, is refused too.
 *
 * @example
 *   const policy = new CallbackPolicy(['127.0.0.1/32']);
 *   policy.refusal('10.0.0.7'); // 'private, 10.0.0.0/8'
 */
export class CallbackPolicy {
  readonly allow: readonly string[];
  readonly #allowed = new BlockList();
  readonly #resolve: LookupFunction;

  /** `allow`: CIDRs (a bare address is one host); `resolve`: the resolver (tests map names without DNS). */
  constructor(allow: readonly string[] = [], resolve: LookupFunction = dnsLookup) {
    const problems: string[] = [];
    for (const cidr of allow) {
      const parsed = parseCidr(cidr);
      if (typeof parsed === 'string') problems.push(parsed);
      else this.#allowed.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
    if (problems.length > 0) {
      throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `callback allow-list: ${problems.join('; ')}`, {
        hint: 'give each --callback-allow as an address or CIDR, e.g. 127.0.0.1/32, 10.1.0.0/16 or fd00::/8',
      });
    }
    this.allow = Object.freeze([...allow]);
    this.#resolve = resolve;
  }

  /** Why a callback may not reach this IP address, or undefined if it may. */
  refusal(address: string): string | undefined {
    if (this.#allowed.check(address, familyOf(address))) return undefined;
    const v4 = embeddedIPv4(address);
    if (v4 !== undefined && this.#allowed.check(v4, 'ipv4')) return undefined;
    return refusedRange(address);
  }

  /** Checks a callback URL's text when an async request arrives; throws NIMBUS_CALLBACK_REFUSED. */
  checkUrl(raw: string): void {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw callbackError(`X-Callback-Url is not a URL: ${JSON.stringify(raw.slice(0, 200))}`, 'NIMBUS_INVALID_REQUEST');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw callbackError(`X-Callback-Url must be an http:// or https:// URL, got ${JSON.stringify(raw.slice(0, 200))}`, 'NIMBUS_INVALID_REQUEST');
    const host = hostOf(url);
    // Names under localhost are loopback by definition (RFC 6761): refused as 127.0.0.1 and ::1 would be.
    const addresses = isIP(host) ? [host] : host === 'localhost' || host.endsWith('.localhost') ? ['127.0.0.1', '::1'] : [];
    const reasons = addresses.map((a) => this.refusal(a));
    if (addresses.length > 0 && reasons.every((r) => r !== undefined)) throw refusedError(host, reasons[0] as string);
  }

  /**
   * A `lookup` for http.request: resolves the name and keeps only the addresses a
   * callback may reach, failing with NIMBUS_CALLBACK_REFUSED if none is left.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    this.#resolve(hostname, { ...options, all: true }, (err, resolved) => {
      if (err) return callback(err, '');
      const list = typeof resolved === 'string' ? [{ address: resolved, family: isIP(resolved) }] : resolved;
      const allowed = list.filter((a) => this.refusal(a.address) === undefined);
      if (allowed.length === 0) {
        const first = list[0];
        const reason = first ? `it resolves to ${first.address}: ${this.refusal(first.address)}` : 'it resolves to no address';
        return callback(refusedError(hostname, reason), '');
      }
      if (options.all) callback(null, allowed);
      else callback(null, allowed[0].address, allowed[0].family);
    });
  };
}

/** The URL's host without IPv6 brackets or a trailing dot, lower case. */
export function hostOf(url: URL): string {
  return url.hostname
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '')
    .toLowerCase();
}

function callbackError(message: string, code: 'NIMBUS_INVALID_REQUEST' | 'NIMBUS_CALLBACK_REFUSED'): NimbusError {
  return new NimbusError(
    code,
    message,
    code === 'NIMBUS_INVALID_REQUEST' ? { hint: 'send the full URL that should receive the result, e.g. X-Callback-Url: https://example.com/done' } : {},
  );
}

function refusedError(host: string, reason: string): NimbusError {
  return callbackError(`the callback URL's host ${JSON.stringify(host)} is not a public address (${reason})`, 'NIMBUS_CALLBACK_REFUSED');
}
