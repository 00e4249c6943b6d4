import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_CONCURRENCY,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MEMORY_MB,
  DEFAULT_PIDS,
  DEFAULT_SCALE_MAX,
  DEFAULT_SCALE_WINDOW_MS,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_TMP_MB,
  DEFAULT_UTILIZATION_PERCENT,
} from '../src/config/defaults.js';
import { BUNDLE_EXTENSIONS, resolveHandler, SOURCE_EXTENSIONS } from '../src/config/handler.js';
import { parseManifest, validateFunctionName } from '../src/config/manifest.js';
import { NimbusError } from '../src/shared/errors.js';

function problems(input: unknown): { field: string; value: unknown; message: string }[] {
  try {
    parseManifest(input);
  } catch (err) {
    assert.ok(err instanceof NimbusError);
    assert.equal(err.code, 'NIMBUS_INVALID_MANIFEST');
    return err.details as { field: string; value: unknown; message: string }[];
  }
  assert.fail('expected the manifest to be rejected');
}

describe('manifest', () => {
  test('an empty manifest gets every default, frozen', () => {
    const m = parseManifest({});
    assert.deepEqual(m, {
      runtime: 'node',
      isolation: 'process',
      env: {},
      memory: DEFAULT_MEMORY_MB,
      timeout: DEFAULT_TIMEOUT_MS,
      tmp: DEFAULT_TMP_MB,
      pids: DEFAULT_PIDS,
      network: { outbound: true, allow: [] },
      scale: {
        min: 0,
        max: DEFAULT_SCALE_MAX,
        concurrency: DEFAULT_CONCURRENCY,
        idleTimeout: DEFAULT_IDLE_TIMEOUT_MS,
        window: DEFAULT_SCALE_WINDOW_MS,
        utilization: DEFAULT_UTILIZATION_PERCENT,
      },
      retries: 2,
      maxEventAge: 6 * 3_600_000,
      triggers: { cron: [], topics: [], buckets: [] },
      bindings: {},
    });
    assert.ok(Object.isFrozen(m) && Object.isFrozen(m.scale));
  });

  test('network: none, outbound, or an allow-list of IPv4 ranges; the host loopback never', () => {
    assert.deepEqual(parseManifest({ network: 'none' }).network, { outbound: false, allow: [] });
    assert.deepEqual(parseManifest({ network: { allow: ['10.1.0.0/16', '192.168.7.9'] } }).network, {
      outbound: true,
      allow: ['10.1.0.0/16', '192.168.7.9/32'],
    });
    assert.match(problems({ network: 'everything' })[0].message, /network must be "none", "outbound"/);
    assert.match(problems({ network: { allow: ['10.0.0.0/33'] } })[0].message, /IPv4 addresses or ranges/);
    assert.match(problems({ network: { outbound: false, allow: ['10.0.0.0/8'] } })[0].message, /needs outbound: true/);
    assert.match(problems({ network: { allow: ['127.0.0.1'] } })[0].message, /loopback is never reachable/);
    assert.match(
      problems({ tmp: 0, pids: 5 })
        .map((p) => p.message)
        .join('\n'),
      /tmp \(MB\) must be at least 1[\s\S]*pids must be at least 16/,
    );
  });

  test('triggers: short and long forms normalise; bad schedules, zones and names are named', () => {
    const m = parseManifest({
      triggers: {
        cron: ['*/5 * * * *', { schedule: '0 0 9 * * 1-5', timezone: 'Europe/Paris' }],
        topics: ['orders', { topic: 'audit', batchSize: 50 }],
        buckets: ['uploads'],
      },
      bindings: { CACHE: { kv: 'cache' }, FILES: { bucket: 'uploads' }, OUT: { topic: 'orders' } },
    });
    assert.deepEqual(m.triggers, {
      cron: [
        { schedule: '*/5 * * * *', timezone: 'UTC' },
        { schedule: '0 0 9 * * 1-5', timezone: 'Europe/Paris' },
      ],
      topics: [
        { topic: 'orders', batchSize: 10 },
        { topic: 'audit', batchSize: 50 },
      ],
      buckets: [{ bucket: 'uploads', events: ['created', 'deleted'], prefix: '' }],
    });
    const input = {
      triggers: {
        cron: ['* * *', { schedule: '61 * * * *' }, { schedule: '* * * * *', timezone: 'Mars/Base' }],
        topics: [{ topic: 'x', batchSize: 500 }],
        buckets: [{ bucket: 'b', events: ['changed'] }],
        queues: [],
      },
      bindings: { 'bad-name': { kv: 'x' }, OK: { table: 'x' }, PORT: { kv: 'x' } },
      env: { PORT: 1 },
    };
    const fields = problems(input).map((d) => d.field);
    for (const f of [
      'triggers.cron.0',
      'triggers.cron.1',
      'triggers.cron.2',
      'triggers.topics.0.batchSize',
      'triggers.buckets.0',
      'triggers.queues',
      'bindings.bad-name',
      'bindings.OK',
    ]) {
      assert.ok(fields.includes(f), `${f} is reported (got ${fields.join(', ')})`);
    }
    const text = problems(input)
      .map((p) => p.message)
      .join('\n');
    assert.match(text, /"\* \* \*" has 3/);
    assert.match(text, /timezone "Mars\/Base" is not an IANA time zone/);
    assert.match(text, /unknown field; allowed here: cron, topics, buckets/);
  });

  test('durations take seconds or a unit; env values become strings', () => {
    const m = parseManifest({ timeout: '1.5s', scale: { idleTimeout: '5m' }, env: { PORT: 8080, DEBUG: true } });
    assert.equal(m.timeout, 1500);
    assert.equal(m.scale.idleTimeout, 300_000);
    assert.deepEqual(m.env, { PORT: '8080', DEBUG: 'true' });
    assert.equal(parseManifest({ timeout: 2 }).timeout, 2000);
    assert.equal(parseManifest({ timeout: '250ms' }).timeout, 250);
    assert.equal(parseManifest({ maxEventAge: '1h' }).maxEventAge, 3_600_000);
  });

  test('every problem is reported at once with field, value and what is allowed', () => {
    const found = problems({
      name: 'Bad',
      memory: 99999,
      timeout: '1y',
      scale: { min: 5, max: 2, concurrency: 0 },
      env: { 'no-dash': 'x', NIMBUS_X: 'y' },
      color: 'red',
    });
    const byField = Object.fromEntries(found.map((p) => [p.field, p]));
    assert.deepEqual(Object.keys(byField).sort(), ['color', 'env.NIMBUS_X', 'env.no-dash', 'memory', 'name', 'scale.concurrency', 'scale.min', 'timeout']);
    assert.equal(byField.memory.value, 99999);
    assert.match(byField.memory.message, /at most 10240/);
    assert.match(byField.timeout.message, /"500ms", "30s", "5m"/);
    assert.match(byField.color.message, /unknown field; allowed here: name, runtime/);
    assert.equal(byField.color.value, 'red');
    assert.match(byField['env.NIMBUS_X'].message, /reserved prefix/);
  });

  test('scale.min may not exceed scale.max', () => {
    const found = problems({ scale: { min: 5, max: 2 } });
    assert.deepEqual(
      found.map((p) => p.field),
      ['scale.min'],
    );
  });

  test('env is limited to 4 KB', () => {
    const found = problems({ env: { BIG: 'x'.repeat(5000) } });
    assert.match(found[0].message, /at most 4096/);
  });

  test('function names', () => {
    for (const ok of ['a', 'hello', 'hello-world-2', 'a'.repeat(63)]) assert.equal(validateFunctionName(ok), ok);
    for (const bad of ['', '../x', 'Hello', 'a'.repeat(64), '-a', 'a-', '1abc', 'a_b', 'a.b', 'a/b', ' a']) {
      assert.throws(() => validateFunctionName(bad), { code: 'NIMBUS_INVALID_NAME' }, JSON.stringify(bad));
    }
  });
});

describe('handler resolution', () => {
  const files =
    (...names: string[]) =>
    (p: string) =>
      names.includes(p);
  test('a file name is the entry, with the style detected', () => {
    assert.deepEqual(resolveHandler('src/main.ts', files('src/main.ts'), SOURCE_EXTENSIONS), { entry: 'src/main.ts' });
  });
  test('file.export as Lambda reads it', () => {
    assert.deepEqual(resolveHandler('index.handler', files('index.ts'), SOURCE_EXTENSIONS), { entry: 'index.ts', exportName: 'handler' });
    assert.deepEqual(resolveHandler('app.main', files('app.mjs'), BUNDLE_EXTENSIONS), { entry: 'app.mjs', exportName: 'main' });
    assert.deepEqual(resolveHandler('index.js.handler', files('index.js'), SOURCE_EXTENSIONS), { entry: 'index.js', exportName: 'handler' });
  });
  test('no handler: the first index file', () => {
    assert.deepEqual(resolveHandler(undefined, files('index.js', 'index.ts'), SOURCE_EXTENSIONS), { entry: 'index.ts' });
  });
  test('a handler with an extension names a file, never an export', () => {
    assert.throws(() => resolveHandler('index.js', files('index.ts'), SOURCE_EXTENSIONS), /handler "index.js" names no file.*did you mean "index.ts"/);
  });
  test('a handler that names nothing is an error naming the handler', () => {
    assert.throws(() => resolveHandler('nope.handler', files('index.ts'), SOURCE_EXTENSIONS), /handler "nope.handler" names no file/);
    assert.throws(() => resolveHandler(undefined, files('main.ts'), SOURCE_EXTENSIONS), /no index file found/);
  });
});
