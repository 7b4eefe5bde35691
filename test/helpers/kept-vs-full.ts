// What change-driven collection must give (Redis and PostgreSQL alike): the snapshot a sidecar built from kept looks
// equals a fresh full collection's, gauge for gauge, and its ages trail the fresh ones by no more than the time between.
import { expect } from 'vitest';
import type { CollectionSnapshot, QueueState } from '../../src/domain/queue-snapshot.js';

/** Asserts `kept` (change-driven) against `fresh` (a full collection taken after it); returns kept's queues by name. */
export function expectKeptEqualsFull(kept: CollectionSnapshot, fresh: CollectionSnapshot): Map<string, QueueState> {
  expect(fresh.ok).toBe(true);
  const byName = (qs: QueueState[]) => new Map(qs.map((q) => [q.ref.name, q]));
  const a = byName(kept.queues);
  const b = byName(fresh.queues);
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  // A kept look is aged from the store's clock at its read plus the local time since its reply arrived: it can
  // trail by that reply's transit, a few ms.
  const elapsed = (fresh.finishedAt - kept.finishedAt) / 1000 + fresh.durationSeconds + kept.durationSeconds + 0.05;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    const gauges = (q: QueueState) => ({
      name,
      jobs: q.jobs,
      paused: q.paused,
      overdue: q.delayedOverdue,
      orphans: q.orphanedActive,
      limited: q.rateLimited,
      workers: q.workers,
    });
    expect(gauges(x)).toEqual(gauges(y));
    // Ages: the kept look aged by the clock, the fresh one read later.
    for (const age of ['oldestWaitingAgeSeconds', 'oldestActiveAgeSeconds'] as const) {
      expect(y[age], `${name} ${age}`).toBeGreaterThanOrEqual(x[age] - 0.01);
      expect(y[age] - x[age], `${name} ${age}`).toBeLessThanOrEqual(elapsed);
    }
  }
  return a;
}
