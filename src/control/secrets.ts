import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_SECRET_NAME_LENGTH, MAX_SECRET_VALUE_BYTES } from '../config/defaults.js';
import { ENV_NAME_PATTERN, RESERVED_ENV_PREFIX } from '../config/manifest.js';
import { NimbusError } from '../shared/errors.js';
import { readBody, sendJson } from '../shared/http.js';
import type { FunctionConfig, SecretInfo } from '../store/store.js';
import type { FunctionRegistry } from './registry.js';

/**
 * Checks a secret's name: the rules of an env variable's name, since that is what it
 * becomes in the instance. The message shows the name, which is never secret.
 */
export function validateSecretName(name: string): string {
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
  if (name.length > MAX_SECRET_NAME_LENGTH || !ENV_NAME_PATTERN.test(name))
    throw new NimbusError(
      'NIMBUS_INVALID_SECRET',
      `invalid secret name ${shown}: use at most ${MAX_SECRET_NAME_LENGTH} letters, digits and "_", not starting with a digit`,
    );
  if (name.startsWith(RESERVED_ENV_PREFIX))
    throw new NimbusError('NIMBUS_INVALID_SECRET', `invalid secret name ${shown}: the prefix ${RESERVED_ENV_PREFIX} is kept for the platform's own variables`);
  return name;
}

/** Turns a request body into a secret value. Messages never quote the value. */
export function decodeSecretValue(body: Uint8Array): string {
  if (body.length === 0) throw new NimbusError('NIMBUS_INVALID_SECRET', 'the secret value is empty; send the value as the request body');
  let value: string;
  try {
    value = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new NimbusError('NIMBUS_INVALID_SECRET', 'the secret value is not valid UTF-8 text (environment variables hold text; base64-encode binary values)');
  }
  if (value.includes('\0')) throw new NimbusError('NIMBUS_INVALID_SECRET', 'the secret value contains a NUL character, which no environment variable can hold');
  return value;
}

/** Names that a version's config gives the function (env variables and bindings) and that are also secrets. */
export function namesTakenBySecrets(config: Pick<FunctionConfig, 'env' | 'bindings'>, secrets: Iterable<string>): string[] {
  const taken = new Set([...Object.keys(config.env), ...Object.keys(config.bindings ?? {})]);
  return [...secrets].filter((name) => taken.has(name)).sort();
}

const secretView = (s: SecretInfo) => ({ name: s.name, updatedAt: new Date(s.updatedAt).toISOString() });

/**
 * The secrets routes (docs/admin-api.md#secrets): GET .../secrets lists names and update
 * times; PUT .../secrets/<NAME> sets one from the raw body; DELETE removes one. No
 * route ever answers with a value.
 */
export async function handleSecrets(
  registry: FunctionRegistry,
  fn: string,
  segment: string | undefined,
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (segment === undefined) {
    allow(method, ['GET']);
    return sendJson(res, 200, { secrets: registry.listSecrets(fn).map(secretView) });
  }
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    throw new NimbusError('NIMBUS_INVALID_SECRET', `invalid secret name ${JSON.stringify(segment.slice(0, 80))} (malformed %-escape)`);
  }
  validateSecretName(name);
  allow(method, ['PUT', 'DELETE']);
  if (method === 'DELETE') {
    req.resume();
    await registry.deleteSecret(fn, name);
    res.writeHead(204).end();
    return;
  }
  const value = decodeSecretValue(await readBody(req, MAX_SECRET_VALUE_BYTES, 'NIMBUS_SECRET_TOO_LARGE'));
  const { created, updatedAt } = await registry.setSecret(fn, name, value);
  sendJson(res, created ? 201 : 200, { created, secret: secretView({ name, updatedAt }) });
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method))
    throw new NimbusError('NIMBUS_METHOD_NOT_ALLOWED', `${method} is not allowed here; use ${methods.join(', ')}`, { headers: { allow: methods.join(', ') } });
}
