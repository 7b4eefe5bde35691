// Folds the event reader's persisted accounting (split by job name, attempt and outcome) into the per-queue
// totals the queue board keeps history of: five counters and the wait and processing histograms.
import { EVENT_BUCKETS_SECONDS } from '../events/buckets.js';
import type { QueueEventAccounting } from '../domain/event-accounting.js';
import { queueId } from '../domain/queue-ref.js';
import type { CumulativeHistogram } from './accounting-ring.js';
import type { BoardAccounting } from './queue-board.js';

/**
 * The totals of the last stats folded, by their counters array: the read-back hands an unchanged queue's arrays
 * out again (events/accounting-cache.ts), so a large idle fleet is not folded again at every collection.
 */
const folded = new WeakMap<QueueEventAccounting['stats']['counters'], { histograms: QueueEventAccounting['stats']['histograms']; totals: BoardAccounting }>();

/** Keyed by queueId(), as QueueBoard.update() takes it. */
export function boardAccounting(queues: readonly QueueEventAccounting[]): Map<string, BoardAccounting> {
  const out = new Map<string, BoardAccounting>();
  for (const { queue, stats } of queues) {
    const known = folded.get(stats.counters);
    if (known && known.histograms === stats.histograms) {
      out.set(queueId(queue), known.totals);
      continue;
    }
    const counters = { added: 0, completed: 0, failed: 0, retried: 0, stalled: 0 };
    for (const c of stats.counters) if (c.counter in counters) counters[c.counter as keyof typeof counters] += c.value;
    const sum = (histogram: 'wait' | 'processing'): CumulativeHistogram => {
      const buckets = new Array<number>(EVENT_BUCKETS_SECONDS.length).fill(0);
      let count = 0;
      let total = 0;
      for (const h of stats.histograms) {
        if (h.histogram !== histogram) continue;
        h.buckets.forEach((n, i) => (buckets[i]! += n));
        count += h.count;
        total += h.sumSeconds;
      }
      return { buckets, count, sum: total };
    };
    const totals = { counters, wait: sum('wait'), processing: sum('processing') };
    folded.set(stats.counters, { histograms: stats.histograms, totals });
    out.set(queueId(queue), totals);
  }
  return out;
}
