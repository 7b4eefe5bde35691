// A small, steady mixed workload so a fresh demo has moving numbers: jobs on the email, webhook and export
// queues with delays, priorities, retries and a few terminal failures. Bounded: it stops with stop().
import { Queue, Worker } from 'bullmq';
import type { Logger } from '../log/logger.js';

export interface DemoTraffic {
  stop(): Promise<void>;
}

const QUEUES = [
  { name: 'email', concurrency: 5, minMs: 30, maxMs: 300, failShare: 0.03 },
  { name: 'webhook', concurrency: 5, minMs: 50, maxMs: 600, failShare: 0.12 },
  { name: 'export', concurrency: 1, minMs: 500, maxMs: 2500, failShare: 0.05 },
] as const;

export function startDemoTraffic(redisUrl: string, log: Logger, opts: { jobsPerSecond?: number } = {}): DemoTraffic {
  const connection = { url: redisUrl, maxRetriesPerRequest: null };
  const queues = QUEUES.map((q) => new Queue(q.name, { connection, streams: { events: { maxLen: 100_000 } } }));
  const workers = QUEUES.map(
    (q) =>
      new Worker(
        q.name,
        async (job) => {
          await new Promise((r) => setTimeout(r, q.minMs + Math.random() * (q.maxMs - q.minMs)));
          if (job.data.fail) throw new Error('demo failure');
          return { ok: true };
        },
        { connection, concurrency: q.concurrency, name: `demo-${q.name}` },
      ),
  );
  const onError = (err: Error) => log.debug({ err: err.message }, 'demo redis error');
  for (const w of workers) w.on('error', onError);
  for (const q of queues) q.on('error', onError);

  const perTick = Math.max(1, Math.round((opts.jobsPerSecond ?? 8) / 4));
  const timer = setInterval(() => {
    for (let i = 0; i < perTick; i += 1) {
      const idx = Math.floor(Math.random() * QUEUES.length);
      const spec = QUEUES[idx]!;
      const r = Math.random();
      void queues[idx]!
        .add(
          `${spec.name}-job`,
          { fail: Math.random() < spec.failShare },
          {
            attempts: 3,
            backoff: { type: 'fixed', delay: 1000 },
            delay: r < 0.1 ? 2000 + Math.random() * 8000 : undefined,
            priority: r > 0.9 ? 5 : undefined,
            removeOnComplete: { count: 1000 },
            removeOnFail: { count: 5000 },
          },
        )
        .catch((err: Error) => log.warn({ err: err.message }, 'demo enqueue failed'));
    }
  }, 250);
  timer.unref();

  return {
    async stop() {
      clearInterval(timer);
      await Promise.allSettled(workers.map((w) => w.close()));
      await Promise.allSettled(queues.map((q) => q.close()));
    },
  };
}
