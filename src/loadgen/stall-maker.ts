// Makes stalls on demand (the demo's occasional stall, `loadgen --scenario stall`): starts a crashing consumer
// process that takes one job and dies holding it. Resolves once that process is gone.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { PostgresTarget } from '../jobs/postgres-store.js';
import { watchChild } from '../util/watch-child.js';

// The compiled script, whether this module runs from dist/ or (in tests) from src/: both sit at the same depth.
const SCRIPT = fileURLToPath(new URL('../../dist/demo/crashing-consumer.js', import.meta.url));

export interface StallResult {
  /** The job the consumer died holding, or undefined when it found none within the timeout. */
  jobId?: string;
}

export function makeStall(o: {
  postgres?: PostgresTarget;
  redisUrl: string;
  clusterNodes?: readonly string[];
  prefix: string;
  queue: string;
  timeoutMs?: number;
}): Promise<StallResult> {
  // On PostgreSQL the consumer gets the database URL and BullMQ's schema in place of the Redis URL and prefix.
  const args = o.postgres
    ? [o.postgres.databaseUrl, o.postgres.schema, o.queue]
    : [o.redisUrl, o.prefix, o.queue, ...(o.clusterNodes?.length ? [o.clusterNodes.join(',')] : [])];
  const child = spawn(process.execPath, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
  watchChild(child);
  let jobId: string | undefined;
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    jobId ??= /TOOK (\S+)/.exec(out)?.[1];
  });
  // No job to take in time: end it cleanly rather than leave it waiting.
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 10_000);
  timer.unref();
  return new Promise((resolve) => {
    child.once('exit', () => {
      clearTimeout(timer);
      resolve({ jobId });
    });
  });
}
