// Every setting of a run, from the environment, with its default. bench/README.md lists them.

function num(name, fallback, min = 0) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number ≥ ${min}; got ${JSON.stringify(raw)}`);
  return n;
}

/** Sections to run: ONLY=a,c (letters, any order); all when unset. */
export const ALL_SECTIONS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
export const ONLY = (() => {
  const raw = process.env.ONLY;
  if (!raw) return ALL_SECTIONS;
  const picked = raw
    .toLowerCase()
    .split(/[\s,]+/)
    .filter(Boolean);
  const unknown = picked.filter((s) => !ALL_SECTIONS.includes(s));
  if (unknown.length > 0) throw new Error(`ONLY: unknown section ${unknown.join(', ')}; sections are ${ALL_SECTIONS.join(', ')}`);
  return ALL_SECTIONS.filter((s) => picked.includes(s));
})();

// (a) warm throughput, (g) async: wrk -t1 -c CONNECTIONS for DURATION s after a WARMUP s run.
export const DURATION_S = num('DURATION', 10, 1);
export const WARMUP_S = num('WARMUP', Math.min(5, DURATION_S), 1);
export const CONNECTIONS = num('CONNECTIONS', 50, 1);
// (b) cold starts per language.
export const SAMPLES = num('SAMPLES', 30, 1);
// (c) simultaneous first requests, and bursts per scale setting.
export const BURST = num('BURST', 100, 1);
export const C_RUNS = num('C_RUNS', 3, 1);
// (d) idle functions: how many, deploys in flight, the idle CPU window, ls repetitions.
export const FUNCTIONS_D = num('FUNCTIONS_D', 1000, 1);
export const DEPLOY_CONCURRENCY = num('DEPLOY_CONCURRENCY', 4, 1);
export const IDLE_S = num('IDLE_S', 10, 1);
export const LS_RUNS = num('LS_RUNS', 7, 1);
// (e) mixed load: its length and the functions' idle timeout.
export const DURATION_E = num('DURATION_E', 12, 4);
export const IDLE_TIMEOUT_E_S = num('IDLE_TIMEOUT_E', 2, 0.1);
// (f) fixed-rate soak: length, share of (a)'s capacity (or a fixed RATE_F req/s), sampling.
export const DURATION_F = num('DURATION_F', 120, 5);
export const LOAD_F = num('LOAD_F', 0.8, 0.01);
export const RATE_F = num('RATE_F', 0, 0);
export const SAMPLE_F_S = num('SAMPLE_F', 15, 1);
// (h) process start to first 200, per peer.
export const START_SAMPLES = num('START_SAMPLES', 5, 1);

export const KNOBS = {
  DURATION: DURATION_S,
  WARMUP: WARMUP_S,
  CONNECTIONS,
  SAMPLES,
  BURST,
  C_RUNS,
  FUNCTIONS_D,
  DEPLOY_CONCURRENCY,
  IDLE_S,
  LS_RUNS,
  DURATION_E,
  IDLE_TIMEOUT_E: IDLE_TIMEOUT_E_S,
  DURATION_F,
  LOAD_F,
  RATE_F,
  SAMPLE_F: SAMPLE_F_S,
  START_SAMPLES,
};
