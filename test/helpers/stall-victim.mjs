// A worker process that takes one job and hangs on it, so a test can SIGKILL it mid-job and watch BullMQ
// reclaim the job as stalled. It runs no stalled check itself: its default 30 s check interval would
// hold the `stalled-check` mutex and delay the reclaim by the other workers.
// Usage: node stall-victim.mjs <redis-url> <prefix> <queue> <lockDurationMs>
import { Worker } from 'bullmq';

const [url, prefix, queue, lockDuration] = process.argv.slice(2);
const worker = new Worker(
  queue,
  async (job) => {
    process.stdout.write(`ACTIVE ${job.id}\n`);
    await new Promise(() => undefined);
  },
  { connection: { url, maxRetriesPerRequest: null }, prefix, concurrency: 1, lockDuration: Number(lockDuration), name: 'stall-victim', skipStalledCheck: true },
);
worker.on('error', () => undefined);
