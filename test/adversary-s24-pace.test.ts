// Adversary (session 24): the busy-queue pace timed before predicted looks (collector/demand-pace.ts) against scrape
// patterns its tests did not make. Ground truth: the looks the test makes on a clock it drives and the reads the real
// ChangePlan makes of a busy queue; a read counts for a look only if it happened at least VISIBLE_MS before it (the
// reader round, its commit and the collection that LEAD_MS budgets for must finish before the scrape is served).
import { describe, expect, it } from 'vitest';
import { ChangePlan } from '../src/collector/change-plan.js';
import { DemandPace, LEAD_MS } from '../src/collector/demand-pace.js';
import type { QueueReading } from '../src/domain/backend.js';
import { QueueChanges } from '../src/domain/queue-changes.js';
import type { QueueRef } from '../src/domain/queue-ref.js';

const MIN = 1000;
const MAX = 7500;
const VISIBLE_MS = 1000;
const PASS_MS = 500;
const reading = { metaExists: 1, waiting: 1, active: 0, limiterPttl: -2, nextDueMs: -1, lockExpiresMs: -1 } as QueueReading;

/** Looks at `lookTimes` (ms from the start, multiples of 250); prompt passes every PASS_MS: for each look after `fromMs`, the age of the data it finds. */
function agesAtLooks(lookTimes: number[], fromMs: number): number[] {
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

const every = (periodMs: number, untilMs: number, shift: (t: number) => number = (t) => t): number[] => {
  const out: number[] = [];
  for (let t = 0; t <= untilMs; t += periodMs) out.push(shift(t));
  return out;
};

describe('adversary s24: busy queues refreshed before predicted looks', () => {
  it('a steady 15 s scraper finds each busy queue read LEAD_MS before each scrape (what holds)', () => {
    for (const age of agesAtLooks(every(15_000, 300_000), 60_000)) expect(age).toBe(LEAD_MS);
  });

  it('one scrape 1.5 s late does not leave the next one with data a whole period old', () => {
    // Before the fix: the late look set the period to 15.75 s and the next on-time look came 0.25 s before its
    // refresh point, finding the queue read 13.5 s before it; the half-gap rule bounds it by MAX (+ a pass).
    const looks = every(15_000, 300_000, (t) => (t === 120_000 ? 121_500 : t));
    const ages = agesAtLooks(looks, 60_000);
    for (const age of ages) expect(age).toBeLessThanOrEqual(MAX + VISIBLE_MS + PASS_MS);
    expect(ages.filter((a) => a === LEAD_MS).length).toBeGreaterThanOrEqual(ages.length - 4);
  });

  it('a scraper alternating 13.5 s and 16.5 s gaps (within 20% of 15 s) is not taken as recurring', () => {
    // Before the fix: predicted at 15 s, a look 1.5 s early missed its refresh and found data 13.5 s old.
    const looks: number[] = [];
    for (let t = 0, i = 0; t <= 300_000; t += i % 2 === 0 ? 13_500 : 16_500, i += 1) looks.push(t);
    for (const age of agesAtLooks(looks, 60_000)) expect(age).toBeLessThanOrEqual(MAX + VISIBLE_MS + PASS_MS);
  });
});
