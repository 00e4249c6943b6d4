import { MAX_SECRET_NAME_LENGTH } from '../config/defaults.js';
import { ENV_NAME_PATTERN, RESERVED_ENV_PREFIX } from '../config/manifest.js';
import { NimbusError } from '../shared/errors.js';
import type { FunctionConfig } from '../store/store.js';

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
