#!/usr/bin/env node
// Thin entry: the CLI is compiled TypeScript under dist/ (built by `npm run build`, run on install).
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('nimbus: the CLI is not built yet. Run `npm run build` in the nimbus package first.\n');
  process.exit(1);
}
const { run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
