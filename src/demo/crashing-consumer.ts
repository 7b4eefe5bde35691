// A consumer that dies mid-job, as a crashed worker does: run as its own process by stall-maker.ts, it takes
// one job from the queue, says so on stdout, and SIGKILLs itself while holding the job's lock. The job's lock
// then expires and the real workers' stalled check reclaims it: a real stall, counted by the event reader.
// Usage: node crashing-consumer.js <redis-url> <prefix> <queue> [<cluster-nodes>]
import { Worker } from 'bullmq';
import { createRedis } from '../redis/connection.js';

const [redisUrl, prefix, queue, clusterNodes] = process.argv.slice(2);
if (!redisUrl || !prefix || !queue) {
  process.stderr.write('usage: crashing-consumer <redis-url> <prefix> <queue> [<cluster-nodes>]\n');
  process.exit(2);
}
const connection = createRedis({ url: redisUrl, clusterNodes: clusterNodes?.split(','), maxRetriesPerRequest: null });
const worker = new Worker(
  queue,
  async (job) => {
    process.stdout.write(`TOOK ${job.id}\n`, () => process.kill(process.pid, 'SIGKILL'));
    await new Promise(() => undefined);
  },
  // A short lock, so the stall shows within seconds. It must not run a stalled check itself: that sets the
  // queue's stalled-check key for its own interval and would delay the real workers' checks.
  { connection, prefix, name: 'queuelens-crashing-consumer', lockDuration: 2000, skipStalledCheck: true, concurrency: 1 },
);
worker.on('error', () => undefined);
