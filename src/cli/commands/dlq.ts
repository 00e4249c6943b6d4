import { NimbusError } from '../../shared/errors.js';
import type { Command } from '../command.js';
import { adminRequest, EXIT, findTarget, print, printJson, table } from '../context.js';
import { fetchInvocation, type InvocationView, printInvocation } from './invocation.js';

const USAGE = `Usage: nimbus dlq <ls|show|redrive|purge> ...

A function's dead-letter queue: async invocations that used up their retries
or their maxEventAge.

  nimbus dlq ls <name> [--limit n]    list them, oldest first
  nimbus dlq show <id>                one of them, with its last error and result
  nimbus dlq redrive <name> [id...]   queue them again (all, or those ids) with
                                      the function's current retries and maxEventAge
  nimbus dlq purge <name> [id...]     delete them (all, or those ids)`;

export const dlq: Command = {
  name: 'dlq',
  summary: "list, inspect, redrive or purge a function's dead letters",
  usage: USAGE,
  options: { limit: { type: 'string' } },
  async run(positionals, values) {
    const [action, subject, ...ids] = positionals;
    const target = findTarget(values);
    const json = values.json === true;
    if (!action || !subject) throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `dlq needs an action and a function name or id\n${USAGE}`);
    const base = `/v1/functions/${encodeURIComponent(subject)}/dlq`;
    switch (action) {
      case 'ls': {
        const limit = values.limit === undefined ? '' : `?limit=${encodeURIComponent(String(values.limit))}`;
        const page = (await (await adminRequest(target, 'GET', `${base}${limit}`)).json()) as { deadLetters: InvocationView[]; next: string | null };
        if (json) printJson(page);
        else if (page.deadLetters.length === 0) print(`No dead letters for ${subject}`);
        else {
          const rows = page.deadLetters.map((d) => [d.id, d.completedAt ?? '', String(d.attempts), (d.lastError ?? '').slice(0, 100)]);
          print(table([['ID', 'DEAD SINCE', 'ATTEMPTS', 'LAST ERROR'], ...rows]));
          if (page.next) print(`(more: nimbus dlq ls ${subject} after ${page.next} with the API's ?after=)`);
        }
        return EXIT.OK;
      }
      case 'show': {
        const v = await fetchInvocation(target, subject);
        if (json) printJson(v);
        else printInvocation(v);
        return EXIT.OK;
      }
      case 'redrive': {
        const body = Buffer.from(JSON.stringify(ids.length > 0 ? { ids } : {}));
        const out = (await (await adminRequest(target, 'POST', `${base}/redrive`, body, 'application/json')).json()) as { redriven: number };
        if (json) printJson(out);
        else print(`Queued ${out.redriven} dead letter${out.redriven === 1 ? '' : 's'} of ${subject} again`);
        return EXIT.OK;
      }
      case 'purge': {
        const query = ids.map((id) => `id=${encodeURIComponent(id)}`).join('&');
        const out = (await (await adminRequest(target, 'DELETE', query ? `${base}?${query}` : base)).json()) as { purged: number };
        if (json) printJson(out);
        else print(`Deleted ${out.purged} dead letter${out.purged === 1 ? '' : 's'} of ${subject}`);
        return EXIT.OK;
      }
      default:
        throw new NimbusError('NIMBUS_INVALID_ARGUMENT', `unknown dlq action ${JSON.stringify(action)}: use ls, show, redrive or purge`);
    }
  },
};
