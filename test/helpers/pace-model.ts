// The busy-queue pace (collector/demand-pace.ts) driving the real ChangePlan on a clock the test drives: looks at
// given times, prompt passes every PASS_MS, and for each look the age of the data it finds. A read counts for a look
// only if it happened at least VISIBLE_MS before it (the reader round, its commit and the collection that LEAD_MS
// budgets for must finish before the scrape is served). Used by the adversary pace tests.
import { ChangePlan } from '../../src/collector/change-plan.js';
import { DemandPace } from '../../src/collector/demand-pace.js';
import type { QueueReading } from '../../src/domain/backend.js';
import { QueueChanges } from '../../src/domain/queue-changes.js';
import type { QueueRef } from '../../src/domain/queue-ref.js';

export const MIN = 1000;
export const MAX = 7500;
export const VISIBLE_MS = 1000;
export const PASS_MS = 500;
const reading = { metaExists: 1, waiting: 1, active: 0, limiterPttl: -2, nextDueMs: -1, lockExpiresMs: -1 } as QueueReading;

/** Looks at `lookTimes` (ms from the start, multiples of 250); prompt passes every PASS_MS: for each look after `fromMs`, the age of the data it finds. */
export function agesAtLooks(lookTimes: number[], fromMs: number): number[] {
  const clock = { now: 50_000_000 };
  const pace = new DemandPace({ minMs: MIN, maxMs: MAX, now: () => clock.now });
  const changes = new QueueChanges();
  const busy: QueueRef = { prefix: 'p', name: 'busy' };
  changes.follow([busy]);
  const plan = new ChangePlan({ changes, sweepMs: 3_600_000, busyRereadMs: () => pace.periodMs(), now: () => clock.now });
  const looks = new Set(lookTimes);
  const end = Math.max(...lookTimes);
  const reads: number[] = [];
  for (let t = 0; t <= end; t += 250) {
    clock.now = 50_000_000 + t;
    if (looks.has(t)) pace.requested();
    if (t % PASS_MS !== 0) continue;
    changes.mark([busy], ['state']);
    const { read } = plan.plan([busy]);
    for (const ref of read) plan.keep({ ref, nowMs: clock.now, reading });
    if (read.length > 0) reads.push(t);
  }
  return lookTimes.filter((l) => l >= fromMs).map((l) => l - (reads.filter((r) => r <= l - VISIBLE_MS).at(-1) ?? -Infinity));
}

/** Times 0, periodMs, 2 × periodMs ... up to untilMs, each passed through `shift`. */
export const every = (periodMs: number, untilMs: number, shift: (t: number) => number = (t) => t): number[] => {
  const out: number[] = [];
  for (let t = 0; t <= untilMs; t += periodMs) out.push(shift(t));
  return out;
};
