import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_SECRET_VALUE_BYTES } from '../config/defaults.js';
import { NimbusError } from '../shared/errors.js';
import { readBody, sendJson } from '../shared/http.js';
import type { SecretInfo } from '../store/store.js';
import type { FunctionRegistry } from './registry.js';
import { decodeSecretValue, validateSecretName } from './secrets.js';

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
