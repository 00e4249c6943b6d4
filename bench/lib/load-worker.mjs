// Open-loop load at fixed rates, run as its own process so its CPU stays apart from
// the harness. Each stream sends GETs on a schedule of constant-rate segments,
// whatever the responses do; the k-th request of a segment is due at from + k/rate and
// its latency counts from that due time, so a stall shows up in the latency instead
// of silently lowering the rate (no coordinated omission). Each stream has its own
// connection pool (a slow function does not hold up the others' requests); requests
// beyond its connections wait in undici's queue, still on the clock.
//
//   node load-worker.mjs '<spec json>'    prints {"event":"started"} then one result line
//   spec: { origin, connections (per stream), timeoutMs, recordAfterS, maxInFlight,
//           streams: [{ id, path, segments: [[fromS, toS, ratePerS], ...] }] }
import { Pool } from 'undici';

const spec = JSON.parse(process.argv[2]);
const recordAfterS = spec.recordAfterS ?? 0;
const maxInFlight = spec.maxInFlight ?? 20_000;
const newPool = () =>
  new Pool(spec.origin, {
    connections: spec.connections,
    pipelining: 1,
    headersTimeout: spec.timeoutMs ?? 10_000,
    bodyTimeout: spec.timeoutMs ?? 10_000,
    keepAliveTimeout: 60_000,
  });

const streams = spec.streams.map((s) => ({
  id: s.id,
  path: s.path,
  pool: newPool(),
  inFlight: 0,
  segments: s.segments.filter(([from, to, rate]) => rate > 0 && to > from).sort((a, b) => a[0] - b[0]),
  seg: 0,
  k: 0,
  due: undefined,
  sent: 0,
  ok: 0,
  non2xx: 0,
  errors: 0,
  dropped: 0,
  latencies: [],
  lastDueS: 0,
}));
const errorCodes = new Map();
const lags = [];
let inFlight = 0;
const completionsPerSecond = [];

/** The due time (s) of the stream's next request, or undefined when its schedule is over. */
function advance(s) {
  for (;;) {
    const segment = s.segments[s.seg];
    if (!segment) {
      s.due = undefined;
      return;
    }
    const [from, to, rate] = segment;
    const due = from + s.k / rate;
    if (due < to) {
      s.due = due;
      s.k++;
      return;
    }
    s.seg++;
    s.k = 0;
  }
}

const t0 = performance.now();
const nowS = () => (performance.now() - t0) / 1000;

function fire(s, dueS) {
  const record = dueS >= recordAfterS;
  if (inFlight >= maxInFlight) {
    if (record) s.dropped++;
    return;
  }
  const intended = t0 + dueS * 1000;
  if (record) {
    s.sent++;
    lags.push(performance.now() - intended);
  }
  s.lastDueS = dueS;
  inFlight++;
  s.inFlight++;
  let status = 0;
  s.pool.dispatch(
    { path: s.path, method: 'GET' },
    {
      onConnect() {},
      onHeaders(statusCode) {
        status = statusCode;
        return true;
      },
      onData() {
        return true;
      },
      onComplete() {
        inFlight--;
        s.inFlight--;
        const done = performance.now();
        const second = Math.floor((done - t0) / 1000);
        completionsPerSecond[second] = (completionsPerSecond[second] ?? 0) + 1;
        if (!record) return;
        s.latencies.push(done - intended);
        if (status >= 200 && status < 300) s.ok++;
        else {
          s.non2xx++;
          errorCodes.set(`HTTP ${status}`, (errorCodes.get(`HTTP ${status}`) ?? 0) + 1);
        }
      },
      onError(err) {
        inFlight--;
        s.inFlight--;
        if (!record) return;
        s.errors++;
        const code = err.code ?? err.name ?? 'error';
        errorCodes.set(code, (errorCodes.get(code) ?? 0) + 1);
      },
    },
  );
}

function summarize(values) {
  const sorted = Float64Array.from(values).sort();
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return sorted.length === 0 ? { n: 0 } : { n: sorted.length, p50: q(0.5), p99: q(0.99), max: sorted.at(-1) };
}

for (const s of streams) advance(s);
const endS = Math.max(0, ...streams.flatMap((s) => s.segments.map((seg) => seg[1])));
process.stdout.write(`${JSON.stringify({ event: 'started' })}\n`);
const cpu0 = process.cpuUsage();

const timer = setInterval(() => {
  const now = nowS();
  let pending = false;
  for (const s of streams) {
    while (s.due !== undefined && s.due <= now) {
      const due = s.due;
      advance(s);
      fire(s, due);
    }
    if (s.due !== undefined) pending = true;
  }
  if (!pending) {
    clearInterval(timer);
    void finish();
  }
}, 1);

async function finish() {
  const deadline = performance.now() + (spec.timeoutMs ?? 10_000) + 1_000;
  while (inFlight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const cpu = process.cpuUsage(cpu0);
  const wallS = nowS();
  const all = [];
  const out = streams.map((s) => {
    for (const l of s.latencies) all.push(l);
    // Requests still unanswered at the end count as failed (unanswered), whatever their window.
    return {
      id: s.id,
      sent: s.sent,
      ok: s.ok,
      non2xx: s.non2xx,
      errors: s.errors,
      dropped: s.dropped,
      unanswered: s.inFlight,
      lastDueS: s.lastDueS,
      latency: summarize(s.latencies),
    };
  });
  const result = {
    event: 'done',
    recordedS: endS - recordAfterS,
    wallS,
    unfinished: inFlight,
    streams: out,
    latency: summarize(all),
    lag: summarize(lags),
    errorCodes: Object.fromEntries(errorCodes),
    completionsPerSecond: Array.from(completionsPerSecond, (n) => n ?? 0),
    cpuPercentOfCore: (100 * (cpu.user + cpu.system)) / 1000 / (wallS * 1000),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await Promise.all(streams.map((s) => s.pool.destroy()));
  process.exit(0);
}
