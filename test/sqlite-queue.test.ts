import { join } from 'node:path';
import { SqliteQueue } from '../src/events/sqlite-queue.js';
import { tempDir } from './helpers.js';
import { queueContract } from './queue-contract.js';

const files = new WeakMap<SqliteQueue, string>();

queueContract(
  'SqliteQueue',
  async () => {
    const file = join(tempDir('nimbus-queue-'), 'events.db');
    const q = new SqliteQueue(file);
    files.set(q, file);
    return q;
  },
  async (q) => {
    const file = files.get(q as SqliteQueue) as string;
    await q.close();
    const again = new SqliteQueue(file);
    files.set(again, file);
    return again;
  },
);
