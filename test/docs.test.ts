import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { parseManifest } from '../src/config/manifest.js';
import { ERROR_CODES } from '../src/shared/errors.js';
import { REPO_ROOT } from './helpers.js';

const read = (path: string) => readFileSync(join(REPO_ROOT, path), 'utf8');

test('docs/errors.md lists every error code, and no code that does not exist', () => {
  const doc = read('docs/errors.md');
  const missing = Object.keys(ERROR_CODES).filter((code) => !doc.includes(`\`${code}\``));
  assert.deepEqual(missing, [], 'codes missing from docs/errors.md');
  const documented = new Set(doc.match(/NIMBUS_[A-Z_]+/g) ?? []);
  const unknown = [...documented].filter((code) => !Object.hasOwn(ERROR_CODES, code));
  assert.deepEqual(unknown, [], 'docs/errors.md names codes the platform does not have');
});

test('the example manifest in docs/manifest.md is valid', () => {
  const doc = read('docs/manifest.md');
  const block = /```yaml\n(# example manifest\n[\s\S]*?)```/.exec(doc);
  assert.ok(block, 'docs/manifest.md has a ```yaml block starting with "# example manifest"');
  const manifest = parseManifest(parseYaml(block[1]), 'docs/manifest.md');
  assert.ok(manifest.name, 'the example names its function');
});

test('the README shows the two quick-start commands', () => {
  const readme = read('README.md');
  assert.ok(readme.includes('npm install && npm start'));
  assert.ok(readme.includes('npm test'));
});

test('every CLI command has a section in docs/cli.md', async () => {
  const doc = read('docs/cli.md');
  for (const command of ['up', 'init', 'deploy', 'invoke', 'ls', 'rm', 'logs', 'secret', 'invocation', 'dlq']) {
    assert.match(doc, new RegExp(`#+ .*nimbus ${command}\\b`), `docs/cli.md documents nimbus ${command}`);
  }
});
