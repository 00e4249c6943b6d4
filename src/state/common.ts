import { FUNCTION_NAME_PATTERN } from '../config/manifest.js';
import { NimbusError } from '../shared/errors.js';

/** Limits of function state, the same as Cloudflare's KV and R2 (and S3's single PUT). */
export const MAX_KV_KEY_BYTES = 512;
export const MAX_KV_VALUE_BYTES = 25 * 1024 * 1024;
export const MAX_OBJECT_KEY_BYTES = 1024;
export const MAX_OBJECT_BYTES = 5 * 1024 * 1024 * 1024;
/** Entries one list call returns at most, and by default. */
export const MAX_LIST_LIMIT = 1000;

const show = (s: string) => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);

/** Namespaces and buckets follow the rule of function names: they appear in URLs and manifests. */
export function validateStateName(kind: 'namespace' | 'bucket', name: unknown): string {
  if (typeof name !== 'string' || !FUNCTION_NAME_PATTERN.test(name)) {
    const shown = typeof name === 'string' ? show(name) : String(name);
    throw new NimbusError('NIMBUS_INVALID_NAME', `invalid ${kind} name ${shown}: use 1-63 of a-z, 0-9 and "-", starting with a letter and not ending with "-"`);
  }
  return name;
}

/**
 * A key as the UTF-8 bytes it is stored and sorted by. Keys are stored as BLOBs so that
 * order and prefix ranges are plain byte comparisons, whatever characters a key holds.
 */
export function keyBytes(kind: 'KV' | 'object', key: unknown, maxBytes: number): Buffer {
  const limit = `a ${kind} key is 1-${maxBytes} bytes of UTF-8 without NUL characters`;
  if (typeof key !== 'string' || key.length === 0) throw new NimbusError('NIMBUS_INVALID_KEY', `${kind} key must be a non-empty string: ${limit}`);
  if (key.includes('\0')) throw new NimbusError('NIMBUS_INVALID_KEY', `${kind} key ${show(key)} contains a NUL character: ${limit}`);
  // URLs treat these as "this folder" and "the parent": no client could name them (Workers KV refuses them too).
  if (key === '.' || key === '..') throw new NimbusError('NIMBUS_INVALID_KEY', `${kind} key ${show(key)} cannot be "." or "..": ${limit}`);
  const bytes = Buffer.from(key, 'utf8');
  // A lone surrogate would be stored as U+FFFD and collide with other keys.
  if (bytes.toString('utf8') !== key) throw new NimbusError('NIMBUS_INVALID_KEY', `${kind} key ${show(key)} is not valid Unicode: ${limit}`);
  if (bytes.length > maxBytes) throw new NimbusError('NIMBUS_INVALID_KEY', `${kind} key is ${bytes.length} bytes: ${limit}`);
  return bytes;
}

/** The list prefix as bytes: a string, empty when left out. */
export function prefixBytes(prefix: unknown): Buffer {
  if (prefix === undefined) return Buffer.alloc(0);
  if (typeof prefix !== 'string') throw new NimbusError('NIMBUS_INVALID_REQUEST', 'prefix must be a string', { hint: 'pass a string prefix, or none' });
  return Buffer.from(prefix, 'utf8');
}

/**
 * The smallest byte string greater than every string that starts with `prefix`, or null
 * when there is none (an empty prefix). `key >= prefix AND key < successor(prefix)` is then
 * exactly "starts with prefix", and an index range scan.
 */
export function successor(prefix: Buffer): Buffer | null {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return null;
  const next = Buffer.from(prefix.subarray(0, end));
  next[end - 1]++;
  return next;
}

/** The page size: default and maximum MAX_LIST_LIMIT; larger values are lowered to it. */
export function listLimit(limit: unknown): number {
  if (limit === undefined) return MAX_LIST_LIMIT;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
    throw new NimbusError('NIMBUS_INVALID_REQUEST', `limit must be a whole number from 1 to ${MAX_LIST_LIMIT}; got ${String(limit)}`, {
      hint: `pass a limit from 1 to ${MAX_LIST_LIMIT}, or none`,
    });
  }
  return Math.min(limit, MAX_LIST_LIMIT);
}

export const encodeCursor = (bytes: Buffer): string => bytes.toString('base64url');

/** Cursors are base64url bytes; anything that does not decode to exactly itself was not issued here. */
export function decodeCursor(cursor: unknown): Buffer | undefined {
  if (cursor === undefined) return undefined;
  const bytes = typeof cursor === 'string' && /^[A-Za-z0-9_-]+$/.test(cursor) ? Buffer.from(cursor, 'base64url') : undefined;
  if (!bytes || bytes.length === 0 || bytes.toString('base64url') !== cursor) {
    throw new NimbusError('NIMBUS_INVALID_REQUEST', `invalid cursor ${typeof cursor === 'string' ? show(cursor) : String(cursor)}`, {
      hint: 'pass back the cursor of the previous list call unchanged, or none to start over',
    });
  }
  return bytes;
}
