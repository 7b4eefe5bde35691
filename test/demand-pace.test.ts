// How often a busy queue is brought up to date (collector/demand-pace.ts): half the recent gap between looks at the
// data, between the shortest and the longest period, and the looks at another replica reach the one that paces through
// the hash under the own prefix. Ground truth: the looks the test makes on a clock it drives, and what Redis holds.
import { describe, expect, it } from 'vitest';
import { ChangePlan } from '../src/collector/change-plan.js';
import { DemandPace, LEAD_MS } from '../src/collector/demand-pace.js';
import type { QueueReading } from '../src/domain/backend.js';
import { QueueChanges } from '../src/domain/queue-changes.js';
import type { QueueRef } from '../src/domain/queue-ref.js';
import { ownKeys } from '../src/redis/keys.js';
import { waitFor } from './helpers/bullmq.js';
import { privateRedis } from './helpers/redis-server.js';

const MIN = 1000;
const MAX = 7500;

const reading = { metaExists: 1, waiting: 1, active: 0, limiterPttl: -2, nextDueMs: -1, lockExpiresMs: -1 } as QueueReading;

/**
 * A busy queue whose events move all the time, planned by ChangePlan with `pace` as its busy period, prompt passes
 * 500 ms apart on the driven clock (as collectOnChange runs them), and looks at `looks(t)`: the times (ms from the
 * start) at which the busy queue was read.
 */
function busyReads(pace: DemandPace, clock: { now: number }, untilMs: number, looks: (t: number) => boolean): number[] {
  const reads: number[] = [];
  const step = busyPlan(pace, clock, looks, [pace]);
  for (let t = 0; t <= untilMs; t += 250) if (step(t)) reads.push(t);
  return reads;
}

/** busyReads's passes one at a time (t: ms from the start, 250 ms apart), the looks made at `askers`: whether it read. */
function busyPlan(pace: DemandPace, clock: { now: number }, looks: (t: number) => boolean, askers: DemandPace[]): (t: number) => boolean {
  const start = clock.now;
  const changes = new QueueChanges();
  const busy: QueueRef = { prefix: 'p', name: 'busy' };
  changes.follow([busy]);
  const plan = new ChangePlan({ changes, sweepMs: 3_600_000, busyRereadMs: () => pace.periodMs(), now: () => clock.now });
  return (t) => {
    clock.now = start + t;
    if (looks(t)) for (const p of askers) p.requested();
    if (t % 500 !== 0) return false;
    changes.mark([busy], ['state']);
    const { read } = plan.plan([busy]);
    for (const ref of read) plan.keep({ ref, nowMs: clock.now, reading });
    return read.length > 0;
  };
}

/** For each look in [fromMs, toMs], how long before it the busy queue was last read (ms). */
function ageAtLooks(reads: number[], lookTimes: number[]): number[] {
  return lookTimes.map((l) => l - (reads.filter((r) => r <= l).at(-1) ?? -Infinity));
}

describe('DemandPace, one process', () => {
  it('is the longest period while nobody asks, half the gap between looks while they come, and grows back when they stop', () => {
    let now = 1_000_000;
    const pace = new DemandPace({ minMs: MIN, maxMs: MAX, now: () => now });
    expect(pace.periodMs()).toBe(MAX);
    // One look tells no gap yet.
    pace.requested();
    expect(pace.periodMs()).toBe(MAX);
    // Prometheus every 15 s: half of it is more than the longest period.
    now += 15_000;
    pace.requested();
    expect(pace.periodMs()).toBe(MAX);
    // Every 4 s: looks 2 s apart in the mean of the last two gaps (15 s, 4 s) → 4.75 s; then (4 s, 4 s) → 2 s.
    now += 4000;
    pace.requested();
    expect(pace.periodMs()).toBe((15_000 + 4000) / 2 / 2);
    now += 4000;
    pace.requested();
    expect(pace.periodMs()).toBe(2000);
    // A poller every 200 ms: requests closer than 250 ms are one look, so looks come every 400 ms: the shortest period.
    for (let i = 0; i < 10; i += 1) {
      now += 200;
      pace.requested();
    }
    expect(pace.periodMs()).toBe(MIN);
    // It stops: the time since the last look stands for the gap as soon as it is longer.
    now += 2000;
    expect(pace.periodMs()).toBe(MIN);
    now += 4000;
    expect(pace.periodMs()).toBe(3000);
    now += 60_000;
    expect(pace.periodMs()).toBe(MAX);
  });
});

describe('DemandPace, looks that recur', () => {
  it('brings a busy queue up to date once per 15 s scrape, LEAD_MS before it, where half the gap read it twice', () => {
    const clock = { now: 2_000_000 };
    const pace = new DemandPace({ minMs: MIN, maxMs: MAX, now: () => clock.now });
    const scrape = (t: number) => t % 15_000 === 0;
    const reads = busyReads(pace, clock, 120_000, scrape);
    // From the third scrape (30 s: two equal gaps make a period) on: one read per gap, within LEAD_MS + one pass
    // before each scrape.
    const gaps = [45_000, 60_000, 75_000, 90_000, 105_000, 120_000];
    for (const look of gaps) expect(reads.filter((r) => r > look - 15_000 && r <= look)).toHaveLength(1);
    for (const age of ageAtLooks(reads, gaps)) {
      expect(age).toBeGreaterThan(0);
      expect(age).toBeLessThanOrEqual(LEAD_MS);
    }
    // The rule it replaces: half the gap (at most MAX), the same scrapes: two reads per gap, data 0-7.5 s old.
    const halfClock = { now: 2_000_000 };
    const half = busyReads(new DemandPace({ minMs: MIN, maxMs: MAX, now: () => halfClock.now }), halfClock, 120_000, () => false);
    expect(half.filter((r) => r > 45_000 && r <= 120_000).length).toBe(10);
    expect(reads.filter((r) => r > 45_000 && r <= 120_000).length).toBe(5);
  });

  it('keeps a poller every second at about a second, and an HA pair at different phases gets a refresh before each look', () => {
    const clock = { now: 3_000_000 };
    const fast = busyReads(new DemandPace({ minMs: MIN, maxMs: MAX, now: () => clock.now }), clock, 20_000, (t) => t % 1000 === 0);
    const late = fast.filter((r) => r >= 5000);
    for (let i = 1; i < late.length; i += 1) expect((late[i] as number) - (late[i - 1] as number)).toBeLessThanOrEqual(1000);
    // Two Prometheus scraping every 15 s, 5 s apart in phase: a read before each of their looks, two per 15 s.
    const haClock = { now: 4_000_000 };
    const ha = busyReads(new DemandPace({ minMs: MIN, maxMs: MAX, now: () => haClock.now }), haClock, 150_000, (t) => t % 15_000 === 0 || t % 15_000 === 5000);
    const looks = [95_000, 105_000, 110_000, 120_000, 125_000, 135_000, 140_000, 150_000].sort((a, b) => a - b);
    for (const age of ageAtLooks(ha, looks)) expect(age).toBeLessThanOrEqual(LEAD_MS);
    expect(ha.filter((r) => r > 90_000 && r <= 150_000).length).toBe(8);
    // They stop: the time since the last look stands for the gap again, up to MAX.
    haClock.now += 60_000;
    const pace = new DemandPace({ minMs: MIN, maxMs: MAX, now: () => haClock.now });
    expect(pace.periodMs()).toBe(MAX);
  });

  it('falls back to half the gap when a look is more than half a period late, and is back to the longest period later', () => {
    let now = 5_000_000;
    const pace = new DemandPace({ minMs: MIN, maxMs: MAX, now: () => now });
    for (let i = 0; i < 4; i += 1) {
      pace.requested();
      now += 10_000;
    }
    // Last look 10 s ago, the next predicted now: due since the refresh point LEAD_MS ago (a read at it counts).
    expect(pace.periodMs()).toBe(LEAD_MS + 1);
    now += 6000;
    // 16 s since the last look, more than half a period late: half the time since it (8 s), at most MAX.
    expect(pace.periodMs()).toBe(MAX);
  });
});

describe('DemandPace, replicas sharing one hash (real Redis)', () => {
  const server = privateRedis();

  it("paces the leader by a replica's looks, and drops them once they stop", async () => {
    const { raw } = server;
    const key = ownKeys.demand('ql-demand');
    let now = 5_000_000;
    const shared = { client: raw, key };
    const leader = new DemandPace({ minMs: MIN, maxMs: MAX, now: () => now, shared });
    const replica = new DemandPace({ minMs: MIN, maxMs: MAX, now: () => now, shared });
    // Nobody asked anyone: nothing written, the longest period.
    expect(leader.periodMs()).toBe(MAX);
    // The replica is polled every second; the leader is asked nothing.
    for (let i = 0; i < 5; i += 1) {
      replica.requested();
      now += 1000;
    }
    // Its field, as Redis holds it: the mean gap (1 s) and its count of looks (written at most every 2 s).
    const fields = await waitFor('the replica wrote its looks', async () => {
      const h = await raw.hgetall(key);
      return Object.keys(h).length === 1 ? h : undefined;
    });
    expect(Object.values(fields)[0]).toMatch(/^1000:\d+$/);
    expect(await raw.pttl(key)).toBeGreaterThan(0);
    // The leader reads the hash at most every 2 s on its own clock: one read now.
    now += 2000;
    await waitFor('the leader paces by the replica', () => leader.periodMs() === MIN);
    // The replica stops being asked; once the silence is longer than its looks could be late, the leader lets go.
    now += 30_000;
    await waitFor('the leader back to the longest period', () => leader.periodMs() === MAX);
    // A field unchanged for a minute (a replica gone) is deleted.
    now += 61_000;
    leader.periodMs();
    await waitFor('the stale field deleted', async () => Object.keys(await raw.hgetall(key)).length === 0);
  });

  it("refreshes a busy queue before each of a replica's predicted scrapes, once per gap, the leader asked nothing", async () => {
    const { raw } = server;
    const key = ownKeys.demand('ql-demand-recurring');
    const clock = { now: 7_000_000 };
    const shared = { client: raw, key };
    const leader = new DemandPace({ minMs: MIN, maxMs: MAX, now: () => clock.now, shared });
    const replica = new DemandPace({ minMs: MIN, maxMs: MAX, now: () => clock.now, shared });
    // Prometheus scrapes the replica every 15 s; the leader plans the busy queue. Each 250 ms step lets the hash
    // writes and reads through (real Redis).
    const step = busyPlan(leader, clock, (t) => t % 15_000 === 0, [replica]);
    const reads: number[] = [];
    for (let t = 0; t <= 120_000; t += 250) {
      if (step(t)) reads.push(t);
      await new Promise((r) => setTimeout(r, 2));
    }
    // What the replica wrote, as Redis holds it: its gap, looks, period and last look.
    const value = Object.values(await raw.hgetall(key))[0] as string;
    expect(value).toMatch(/^15000:\d+:15000:\d+$/);
    const gaps = [60_000, 75_000, 90_000, 105_000, 120_000];
    for (const look of gaps) expect(reads.filter((r) => r > look - 15_000 && r <= look)).toHaveLength(1);
    for (const age of ageAtLooks(reads, gaps)) expect(age).toBeLessThanOrEqual(LEAD_MS);
  });
});
