// Owns the budget of watched queues, the same on every backend: at most --max-queues of them, in byte order of
// prefix then name, and their names together at most NAME_BYTES_PER_QUEUE × --max-queues bytes, since every series of
// a queue repeats its name. Plain data in, plain data out; discovery (Redis or PostgreSQL) logs what it left out.
import type { QueueRef } from './queue-ref.js';

/**
 * Average name bytes allowed per queue over --max-queues (640 KB for 5,000 queues): every series of a queue
 * repeats its name, so this bounds the exposition with the queue count, however long each name is.
 */
export const NAME_BYTES_PER_QUEUE = 128;

export interface CappedQueues {
  /** The watched queues, sorted by prefix then name. */
  watched: QueueRef[];
  /** Queues within --max-queues left out because the names before them used up the byte budget. */
  overBudget: number;
  /** Queues beyond --max-queues. */
  dropped: number;
}

export function compareRefs(a: QueueRef, b: QueueRef): number {
  return a.prefix === b.prefix ? cmp(a.name, b.name) : cmp(a.prefix, b.prefix);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function capQueues(known: Iterable<QueueRef>, maxQueues: number): CappedQueues {
  const all = [...known].sort(compareRefs);
  const capped = all.slice(0, maxQueues);
  const budget = maxQueues * NAME_BYTES_PER_QUEUE;
  let bytes = 0;
  let fit = 0;
  for (; fit < capped.length; fit += 1) {
    bytes += Buffer.byteLength((capped[fit] as QueueRef).name);
    if (bytes > budget) break;
  }
  return { watched: capped.slice(0, fit), overBudget: capped.length - fit, dropped: all.length - capped.length };
}

/** Warns (through `warn`) when what the budget leaves out changed since `before`: a flood is noted once, not at every pass. */
export function warnCapped(
  warn: (fields: Record<string, unknown>, message: string) => void,
  before: { overBudget: number; dropped: number },
  after: CappedQueues,
  maxQueues: number,
): void {
  if (after.overBudget > 0 && after.overBudget !== before.overBudget)
    warn({ dropped: after.overBudget, nameBytes: maxQueues * NAME_BYTES_PER_QUEUE }, 'queue names exceed their total byte budget; the rest are not exported');
  if (after.dropped > 0 && after.dropped !== before.dropped)
    warn({ dropped: after.dropped, maxQueues }, 'more queues than --max-queues; the rest are not exported');
}
