// How often a busy queue is brought up to date (collector/demand-pace.ts): half the recent gap between looks at the
// data, between the shortest and the longest period, and the looks at another replica reach the one that paces through
// the hash under the own prefix. Ground truth: the looks the test makes on a clock it drives, and what Redis holds.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemandPace } from '../src/collector/demand-pace.js';
import { ownKeys } from '../src/redis/keys.js';
import { waitFor } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

const MIN = 1000;
const MAX = 7500;

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

describe('DemandPace, replicas sharing one hash (real Redis)', () => {
  let redis: TestRedis;
  let raw: Redis;
  beforeAll(async () => {
    redis = await startTestRedis();
    raw = redis.client();
  });
  afterAll(async () => {
    raw?.disconnect();
    await redis?.stop();
  });

  it("paces the leader by a replica's looks, and drops them once they stop", async () => {
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
});
