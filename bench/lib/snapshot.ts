// A collection's snapshot as the in-process benches (bench/exposition.ts, bench/scrape-burst.ts) feed QueueMetrics,
// without Redis: each queue with `jobs` jobs in every state, its oldest waiting job `age` s old, nothing else.
import { JOB_STATES, type CollectionSnapshot } from '../../src/domain/queue-snapshot.js';
import type { QueueRef } from '../../src/domain/queue-ref.js';

export function benchSnapshot(seq: number, prefix: string, queues: ReadonlyArray<{ ref: QueueRef; jobs: number; age: number }>): CollectionSnapshot {
  return {
    seq,
    ok: true,
    redisUp: true,
    durationSeconds: 0.1,
    lastSuccessAt: Date.now(),
    queuesDropped: 0,
    queuesByPrefix: { [prefix]: queues.length },
    queues: queues.map((q) => ({
      ref: q.ref,
      jobs: Object.fromEntries(JOB_STATES.map((s) => [s, q.jobs])) as CollectionSnapshot['queues'][number]['jobs'],
      paused: false,
      oldestWaitingAgeSeconds: q.age,
      delayedOverdue: 0,
      oldestActiveAgeSeconds: 0,
      orphanedActive: 0,
      workers: 1,
      rateLimited: false,
    })),
  } as unknown as CollectionSnapshot;
}
