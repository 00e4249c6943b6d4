// Runs lib/load-worker.mjs (open-loop, fixed-rate load) in its own process.
import { join } from 'node:path';
import { HERE, start } from './peers.mjs';

/**
 * Resolves with the worker's result once its schedule is over and its requests are
 * answered. `onStarted` runs when the first request is due (time zero of the schedule).
 */
export function runLoad(spec, { onStarted } = {}) {
  const child = start(process.execPath, [join(HERE, 'lib', 'load-worker.mjs'), JSON.stringify(spec)]);
  return new Promise((resolve, reject) => {
    let buffer = '';
    let result;
    child.stdout.on('data', (d) => {
      buffer += d;
      let nl = buffer.indexOf('\n');
      while (nl !== -1) {
        const msg = JSON.parse(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (msg.event === 'started') onStarted?.();
        else if (msg.event === 'done') result = msg;
        nl = buffer.indexOf('\n');
      }
    });
    // 'close', not 'exit': the result line may still be in the pipe when the process exits.
    child.once('close', (code) => {
      if (result) resolve(result);
      else reject(new Error(`load generator exited with ${code} without a result: ${child.stderrTail}`));
    });
  });
}
