import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConcurrencyWindow, decideScale, INITIAL_SCALE_STATE, type ScaleObservation, type ScalePolicy, type ScaleState } from '../src/runtime/autoscaler.js';

const S = 1_000;
const POLICY: ScalePolicy = {
  min: 0,
  max: 100,
  concurrency: 10,
  utilization: 0.7,
  stableWindowMs: 60 * S,
  panicWindowMs: 6 * S,
  panicThreshold: 2,
  maxScaleUpRate: 1000,
  maxScaleDownRate: 2,
  scaleToZeroGraceMs: 30 * S,
};

/**
 * Runs the autoscaler over a synthetic timeline: `load(t)` is the number of requests in
 * flight at second t. Instances become ready `startDelay` decisions after they are
 * asked for. Returns the decisions, one per second.
 */
function simulate(policy: ScalePolicy, seconds: number, load: (t: number) => number, opts: { startReady?: number } = {}) {
  const window = new ConcurrencyWindow(policy.stableWindowMs);
  const T0 = 1_000_000 * S;
  let state: ScaleState = { ...INITIAL_SCALE_STATE, desired: opts.startReady ?? 0 };
  let ready = opts.startReady ?? 0;
  let lastRequestAt = 0;
  const out: { t: number; desired: number; panic: boolean; ready: number }[] = [];
  for (let t = 0; t < seconds; t++) {
    const now = T0 + t * S;
    const level = load(t);
    window.set(level, now);
    if (level > 0) lastRequestAt = now;
    const end = now + S;
    const obs: ScaleObservation = {
      now: end,
      ready,
      stableAverage: window.average(policy.stableWindowMs, end),
      panicAverage: window.average(policy.panicWindowMs, end),
      lastRequestAt,
    };
    const d = decideScale(policy, obs, state);
    state = d.state;
    ready = d.desired; // instances start within the second
    out.push({ t, desired: d.desired, panic: d.panic, ready });
  }
  return out;
}

describe('autoscaler: decisions on synthetic timelines (pure, no sleeping)', () => {
  test('a steady load settles at ceil(load / (concurrency × utilization))', () => {
    const run = simulate(POLICY, 120, () => 14);
    // 14 in flight, 7 per instance at 70% of 10: two instances.
    assert.equal(run.at(-1)?.desired, 2);
    assert.ok(run.slice(70).every((d) => d.desired === 2 && !d.panic));
  });

  test('one request to a function at zero is no panic (no ready instance counts as one)', () => {
    const run = simulate(POLICY, 3, (t) => (t === 0 ? 1 : 0));
    assert.equal(run[0].panic, false);
    assert.equal(run[0].desired, 1);
  });

  test('a burst from zero panics and scales up in one decision, coalesced', () => {
    const run = simulate(POLICY, 10, (t) => (t >= 2 ? 100 : 0));
    assert.equal(run[1].desired, 0);
    // The first second of the burst: the panic window's average is 100/6 per second... the
    // stable one lower; panic mode follows the short window at once.
    assert.equal(run[2].panic, true);
    assert.ok(run[2].desired >= 3, `scaled up at once: ${run[2].desired}`);
    // Within the panic window it reaches ceil(100 / 7) = 15 and stays.
    assert.equal(run[8].desired, 15);
  });

  test('panic mode holds the instances for a stable window after it began; then they go at most 2× per decision', () => {
    const run = simulate(POLICY, 200, (t) => (t < 30 ? 100 : 0));
    assert.equal(run[0].desired, 15, 'the first decision of a burst from zero already asks for all it needs');
    // The burst starts over the threshold (100 requests, no instance); panic never scales
    // down and lasts a stable window (60 s) past the last second over the threshold.
    assert.ok(
      run.slice(0, 60).every((d) => d.desired === 15 && d.panic),
      'held while panicking',
    );
    assert.equal(run[60].panic, false);
    const after = run.slice(59).map((d) => d.desired);
    for (let i = 1; i < after.length; i++) assert.ok(after[i] >= Math.floor(after[i - 1] / 2), `at most halved per decision: ${after.join(',')}`);
    assert.ok(after[1] < 15, 'then follows the stable window down');
    assert.equal(run.at(-1)?.desired, 0, 'back to zero in the end');
  });

  test('to zero only after the scale-to-zero grace without requests', () => {
    const policy = { ...POLICY, stableWindowMs: 6 * S, panicWindowMs: 2 * S, scaleToZeroGraceMs: 20 * S };
    const run = simulate(policy, 60, (t) => (t < 5 ? 3 : 0));
    const zeroAt = run.findIndex((d, i) => i > 5 && d.desired === 0);
    // The last request was seen at second 4; the grace ends 20 s later (the decision at the end of second 23).
    assert.ok(zeroAt >= 23, `not before the grace period: zero at ${zeroAt}`);
    assert.ok(
      run.slice(5, zeroAt).every((d) => d.desired >= 1),
      'one instance kept until then',
    );
  });

  test('min keeps instances warm with no load; max caps a burst', () => {
    const warm = simulate({ ...POLICY, min: 3 }, 100, () => 0);
    assert.ok(warm.every((d) => d.desired === 3));
    const capped = simulate({ ...POLICY, max: 4 }, 20, () => 500);
    assert.ok(capped.every((d) => d.desired <= 4));
    assert.equal(capped.at(-1)?.desired, 4);
  });

  test('the scale-up rate limits growth per decision', () => {
    const run = simulate({ ...POLICY, maxScaleUpRate: 2 }, 12, () => 700, { startReady: 1 });
    assert.deepEqual(
      run.slice(0, 6).map((d) => d.desired),
      [2, 4, 8, 16, 32, 64],
    );
    assert.equal(run.at(-1)?.desired, 100);
  });

  test('utilization leaves headroom: the same load needs more instances at a lower target', () => {
    const at70 = simulate(POLICY, 90, () => 20).at(-1)?.desired;
    const at100 = simulate({ ...POLICY, utilization: 1 }, 90, () => 20).at(-1)?.desired;
    assert.equal(at70, 3);
    assert.equal(at100, 2);
  });
});

describe('ConcurrencyWindow: time-weighted averages of requests in flight', () => {
  test('a 200 ms burst of 50 requests counts as 10 over its second', () => {
    const w = new ConcurrencyWindow(60 * S);
    const t0 = 500_000 * S;
    w.set(0, t0);
    w.set(50, t0 + 100);
    w.set(0, t0 + 300);
    assert.equal(w.average(1 * S, t0 + S), 10);
    assert.equal(w.average(10 * S, t0 + S), 10, 'only one second has been observed');
  });

  test('a clock that starts at zero is a clock like any other', () => {
    const w = new ConcurrencyWindow(10 * S);
    w.set(5, 0);
    w.set(0, 500);
    assert.equal(w.average(S, S), 2.5);
  });

  test('averages over the window; old seconds fall out; a long quiet spell resets it', () => {
    const w = new ConcurrencyWindow(10 * S);
    const t0 = 700_000 * S;
    w.set(4, t0);
    w.set(0, t0 + 5 * S);
    assert.equal(w.average(10 * S, t0 + 10 * S), 2);
    assert.equal(w.average(2 * S, t0 + 10 * S), 0);
    assert.equal(w.average(10 * S, t0 + 15 * S), 0, 'the busy seconds left the window');
    w.set(3, t0 + 3_600 * S);
    assert.equal(w.average(10 * S, t0 + 3_610 * S), 3);
  });
});
