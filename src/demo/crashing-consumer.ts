// A consumer that dies mid-job, as a crashed worker does: run as its own process by stall-maker.ts, it takes
// one job from the queue, says so on stdout, and SIGKILLs itself while holding the job's lock. The job's lock
// then expires and the real workers' stalled check reclaims it: a real stall, counted by the event reader.
// Usage: node crashing-consumer.js <redis-url> <prefix> <queue> [<cluster-nodes>]
//        node crashing-consumer.js <postgres-url> <schema> <queue>        (BullMQ on PostgreSQL)
import { Worker, type Processor } from 'bullmq';
import { postgresWorker } from '../jobs/postgres-store.js';
import { createRedis } from '../redis/connection.js';

const [url, prefix, queue, clusterNodes] = process.argv.slice(2);
if (!url || !prefix || !queue) {
  process.stderr.write('usage: crashing-consumer <redis-url|postgres-url> <prefix|schema> <queue> [<cluster-nodes>]\n');
  process.exit(2);
}
const take: Processor = async (job) => {
  process.stdout.write(`TOOK ${job.id}\n`, () => process.kill(process.pid, 'SIGKILL'));
  await new Promise(() => undefined);
};
// A short lock, so the stall shows within seconds. It must not run a stalled check itself: that sets the
// queue's stalled-check key for its own interval and would delay the real workers' checks.
const opts = { name: 'queuelens-crashing-consumer', lockDuration: 2000, skipStalledCheck: true, concurrency: 1 };
const worker = /^postgres(ql)?:/.test(url)
  ? postgresWorker({ databaseUrl: url, schema: prefix, ownSchema: '', migrate: false }, queue, take, opts)
  : new Worker(queue, take, { ...opts, connection: createRedis({ url, clusterNodes: clusterNodes?.split(','), maxRetriesPerRequest: null }), prefix });
worker.on('error', () => undefined);
