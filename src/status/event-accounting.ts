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

const zeroHistogram = (): CumulativeHistogram =>
  Object.freeze({ buckets: Object.freeze(new Array<number>(EVENT_BUCKETS_SECONDS.length).fill(0)), count: 0, sum: 0 });
/** The totals of every queue whose accounting is all zeros; never written (nor is any totals object). */
const ZERO: BoardAccounting = Object.freeze({
  counters: Object.freeze({ added: 0, completed: 0, failed: 0, retried: 0, stalled: 0 }),
  wait: zeroHistogram(),
  processing: zeroHistogram(),
});

/** Whether every number of `t` is +0 (Object.is: ZERO stands for a fold only where it equals it bit for bit). */
function isZero(t: BoardAccounting): boolean {
  for (const v of Object.values(t.counters)) if (!Object.is(v, 0)) return false;
  for (const h of [t.wait, t.processing]) {
    if (!Object.is(h.count, 0) || !Object.is(h.sum, 0)) return false;
    for (let i = 0; i < h.buckets.length; i += 1) if (!Object.is(h.buckets[i], 0)) return false;
  }
  return true;
}

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
    const made = { counters, wait: sum('wait'), processing: sum('processing') };
    // A queue that never saw a job (most of a large idle fleet) shares one set of zeros.
    const totals = isZero(made) ? ZERO : made;
    folded.set(stats.counters, { histograms: stats.histograms, totals });
    out.set(queueId(queue), totals);
  }
  return out;
}
