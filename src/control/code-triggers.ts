import { type CronTrigger, cronProblem, type Triggers } from '../config/triggers.js';
import type { LoadedMessage } from '../runtime/protocol/frames.js';
import { NimbusError } from '../shared/errors.js';
import type { FunctionConfig } from '../store/store.js';

/**
 * Checks the triggers against the entry points the code has (a Workers module with a
 * schedule needs scheduled(), with topics or buckets queue(); an Azure module's schedule
 * needs app.timer), and takes schedules the code declares (Azure app.timer) when the
 * manifest has none.
 */
export function withCodeTriggers(config: FunctionConfig, loaded: LoadedMessage): FunctionConfig {
  const t = config.triggers ?? NO_TRIGGERS;
  const handles = new Set(loaded.handles ?? []);
  const missing = (what: string, needs: string) =>
    new NimbusError('NIMBUS_HANDLER_NOT_FOUND', `the manifest has ${what} but the code has no ${needs}`, {
      hint: 'add the handler, or remove the trigger from nimbus.yaml',
    });
  if (loaded.style === 'workers') {
    if (t.cron.length > 0 && !handles.has('scheduled')) throw missing('triggers.cron', 'scheduled(controller, env, ctx) in its default export');
    if (t.topics.length + t.buckets.length > 0 && !handles.has('queue'))
      throw missing('topic or bucket triggers', 'queue(batch, env, ctx) in its default export');
  }
  if (loaded.style !== 'azure') return config;
  if (t.topics.length + t.buckets.length > 0 && !handles.has('http'))
    throw missing('topic or bucket triggers', 'app.http(name, { handler }) to receive them (app.timer only runs schedules)');
  const timers = loaded.timers ?? [];
  if (t.cron.length === 0 && timers.length > 0) {
    const cron: CronTrigger[] = [];
    for (const timer of timers) {
      const problem = cronProblem(timer.schedule, 'UTC');
      if (problem) throw new NimbusError('NIMBUS_INVALID_MANIFEST', `app.timer("${timer.name}"): ${problem}`);
      cron.push({ schedule: timer.schedule.trim(), timezone: 'UTC', timer: timer.name });
    }
    return { ...config, triggers: { ...t, cron } };
  }
  if (t.cron.length === 0) return config;
  if (!handles.has('timer')) throw missing('triggers.cron', 'app.timer(name, { schedule, handler })');
  // A manifest schedule runs the timer declared with the same schedule, or the only timer there is.
  const cron = t.cron.map((c: CronTrigger) => {
    const timer = timers.find((x) => x.schedule.trim() === c.schedule) ?? (timers.length === 1 ? timers[0] : undefined);
    if (!timer)
      throw new NimbusError(
        'NIMBUS_HANDLER_NOT_FOUND',
        `triggers.cron "${c.schedule}" matches none of the code's timers (${timers.map((x) => `${x.name}: ${x.schedule}`).join(', ')})`,
        { hint: "give the manifest schedule the same text as the app.timer schedule it should run, or leave triggers.cron out to use the code's schedules" },
      );
    return { ...c, timer: timer.name };
  });
  return { ...config, triggers: { ...t, cron } };
}

export const NO_TRIGGERS: Triggers = Object.freeze({ cron: [], topics: [], buckets: [] });
