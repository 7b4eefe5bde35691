// Traffic for bench/with-traffic.ts in a process of its own (its CPU is not the bench's nor the sidecar's): one
// BullMQ Worker per active queue (concurrency 1, a job takes no time) and a producer adding `rate` jobs per second
// round-robin over those queues. argv: <redisUrl> <prefix> <queue,queue,...> <rate>. Prints READY, then runs until
// killed.
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';

const [url, prefix, list, rateArg] = process.argv.slice(2) as [string, string, string, string];
const names = list.split(',');
const rate = Number(rateArg);
const connection = new Redis(url, { maxRetriesPerRequest: null });
const queues = names.map((n) => new Queue(n, { connection, prefix, skipMetasUpdate: true }));
const workers = names.map((n) => {
  const w = new Worker(n, async () => undefined, { connection: { url }, prefix, concurrency: 1 });
  w.on('error', () => undefined);
  return w;
});
await Promise.all(workers.map((w) => w.waitUntilReady()));
let next = 0;
const TICK_MS = 50;
let owed = 0;
setInterval(() => {
  owed += (rate * TICK_MS) / 1000;
  for (; owed >= 1; owed -= 1) {
    const q = queues[next++ % queues.length] as Queue;
    void q.add('t', { at: Date.now() }, { removeOnComplete: 1000, removeOnFail: 1000 }).catch(() => undefined);
  }
}, TICK_MS);
process.stdout.write('READY\n');
