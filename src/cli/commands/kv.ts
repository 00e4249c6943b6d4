import { NimbusError } from '../../shared/errors.js';
import type { Command } from '../command.js';
import { adminRequest, EXIT, findTarget, print, printJson, table } from '../context.js';

const USAGE = `Usage: nimbus kv <ls|get|put|rm> ...

Key-value namespaces (bound to functions as env.<NAME>, docs/state.md).

  nimbus kv ls                                 every namespace, with its key count
  nimbus kv ls <namespace> [--prefix p]        its keys (up to --limit, default 1000)
  nimbus kv get <namespace> <key>              the value, on stdout
  nimbus kv put <namespace> <key> <value> [--ttl seconds]
  nimbus kv rm <namespace> <key>`;

export const kv: Command = {
  name: 'kv',
  summary: 'read and write key-value namespaces',
  usage: USAGE,
  options: { prefix: { type: 'string' }, ttl: { type: 'string' }, limit: { type: 'string' }, cursor: { type: 'string' } },
  async run(positionals, values) {
    const [action, ns, key, value, ...rest] = positionals;
    const target = findTarget(values);
    const json = values.json === true;
    const usage = (why: string) => new NimbusError('NIMBUS_INVALID_ARGUMENT', `${why}\n${USAGE}`);
    if (rest.length > 0) throw usage('too many arguments');
    const keyPath = () => `/v1/kv/${encodeURIComponent(ns)}/keys/${encodeURIComponent(key)}`;
    switch (action) {
      case 'ls': {
        if (!ns) {
          const out = (await (await adminRequest(target, 'GET', '/v1/kv')).json()) as { namespaces: { name: string; keys: number }[] };
          if (json) printJson(out);
          else if (out.namespaces.length === 0) print('No KV namespaces yet');
          else print(table([['NAMESPACE', 'KEYS'], ...out.namespaces.map((n) => [n.name, String(n.keys)])]));
          return EXIT.OK;
        }
        const q = new URLSearchParams();
        for (const k of ['prefix', 'limit', 'cursor']) if (values[k] !== undefined) q.set(k, String(values[k]));
        const out = (await (await adminRequest(target, 'GET', `/v1/kv/${encodeURIComponent(ns)}/keys?${q}`)).json()) as {
          keys: { name: string; expiration: number | null }[];
          cursor: string | null;
        };
        if (json) printJson(out);
        else {
          print(table([['KEY', 'EXPIRES'], ...out.keys.map((k) => [k.name, k.expiration === null ? '-' : new Date(k.expiration * 1000).toISOString()])]));
          if (out.cursor) print(`(more: --cursor ${out.cursor})`);
        }
        return EXIT.OK;
      }
      case 'get': {
        if (!ns || key === undefined || value !== undefined) throw usage('kv get needs a namespace and a key');
        const res = await adminRequest(target, 'GET', keyPath());
        process.stdout.write(Buffer.from(await res.arrayBuffer()));
        return EXIT.OK;
      }
      case 'put': {
        if (!ns || key === undefined || value === undefined) throw usage('kv put needs a namespace, a key and a value');
        const ttl = values.ttl !== undefined ? `?ttl=${encodeURIComponent(String(values.ttl))}` : '';
        await adminRequest(target, 'PUT', `${keyPath()}${ttl}`, Buffer.from(value), 'application/octet-stream');
        if (!json) print(`Stored ${key} in ${ns}${ttl ? ` for ${values.ttl} s` : ''}`);
        return EXIT.OK;
      }
      case 'rm': {
        if (!ns || key === undefined || value !== undefined) throw usage('kv rm needs a namespace and a key');
        await adminRequest(target, 'DELETE', keyPath());
        if (!json) print(`Deleted ${key} from ${ns}`);
        return EXIT.OK;
      }
      default:
        throw usage(`unknown kv action ${JSON.stringify(action ?? '')}: use ls, get, put or rm`);
    }
  },
};
