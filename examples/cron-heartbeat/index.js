// A schedule (Workers style): scheduled() runs at each tick and records it in KV;
// GET /fn/cron-heartbeat shows the last run and how many there were.
export default {
  async scheduled(controller, env) {
    const runs = Number((await env.BEATS.get('runs')) ?? 0) + 1;
    await env.BEATS.put('last-run', new Date(controller.scheduledTime).toISOString());
    await env.BEATS.put('runs', String(runs));
    console.log(`tick ${runs} for "${controller.cron}"`);
  },

  async fetch(_request, env) {
    // runs first: scheduled() writes last-run before runs, so a count read here never
    // comes with an older last-run (KV has no transactions across keys).
    const runs = Number((await env.BEATS.get('runs')) ?? 0);
    return Response.json({ schedule: '*/5 * * * *', lastRun: await env.BEATS.get('last-run'), runs });
  },
};
