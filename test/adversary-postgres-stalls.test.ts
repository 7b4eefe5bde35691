// Adversarial probe (issue 18): a job that stalls past maxStalledCount (failed for good by BullMQ) and jobs whose
// producer clock is off (an explicit `timestamp` an hour back, and one in the future), on PostgreSQL. Ground truth:
// the event table for the counters, the job rows for the ages.
import { describe, expect, it } from 'vitest';
import { PostgresSnapshotCollector } from '../src/postgres/snapshot.js';
import { freshMetrics, usePostgresSuite } from './helpers/postgres-suite.js';
import { seriesKey } from './helpers/prom-text.js';

const POLL = { timeout: 120_000, interval: 300 };

describe('adversary: stalls past the limit and producer clocks on PostgreSQL', () => {
  const pg = usePostgresSuite();

  it('counts a job stalled past maxStalledCount as stalled, then failed for good, as the event table says', async () => {
    const Q = 'stall-out';
    const q = pg.bull.queue(Q);
    const s = await pg.sidecar();
    await s.refresh();
    await s.start();
    await q.add('doomed', {});
    // Each worker takes the job and never finishes nor renews it; closed with force, it leaves the job active.
    for (let round = 0; round < 2; round++) {
      const w = pg.bull.worker(Q, () => new Promise(() => undefined), { lockDuration: 500, stalledInterval: 3_600_000, maxStalledCount: 1 });
      await expect.poll(async () => (await q.getJobCounts('active')).active, POLL).toBe(1);
      await w.close(true);
      // A checker (no processing: its processor never gets the job back, the stall check moves it) reclaims it.
      const checker = pg.bull.worker(Q, () => new Promise(() => undefined), { lockDuration: 500, stalledInterval: 300, maxStalledCount: 1, autorun: false });
      await checker.startStalledCheckTimer();
      await expect
        .poll(async () => {
          const c = await q.getJobCounts('active', 'failed', 'waiting');
          return c.active === 0 || c.failed === 1;
        }, POLL)
        .toBe(true);
      await checker.close(true);
      if ((await q.getJobCounts('failed')).failed === 1) break;
    }
    // Past the limit the job carries a deferred failure: the next worker to fetch it fails it.
    const finisher = pg.bull.worker(Q, async () => 1, { maxStalledCount: 1 });
    await expect.poll(async () => (await q.getJobCounts('failed')).failed, POLL).toBe(1);
    await finisher.close();
    const rows = (
      await pg.server.pool(1).query<{ event: string; n: string }>('SELECT event, count(*)::text AS n FROM bullmq.event WHERE queue = $1 GROUP BY event', [Q])
    ).rows;
    const n = (k: string) => Number(rows.find((r) => r.event === k)?.n ?? 0);
    expect(n('stalled')).toBeGreaterThanOrEqual(1);
    const key = (name: string) => seriesKey(name, { prefix: 'bullmq', queue: Q });
    await expect
      .poll(async () => {
        const m = await freshMetrics(s);
        return {
          stalled: m.get(key('bullmq_jobs_stalled_total')),
          failed: m.get(key('bullmq_jobs_failed_total')),
          completed: m.get(key('bullmq_jobs_completed_total')),
        };
      }, POLL)
      .toEqual({ stalled: n('stalled'), failed: n('failed'), completed: 0 });
    expect(n('failed')).toBe(1);
  });

  it('ages a job by the time its producer stamped, an hour back or in the future', async () => {
    const collector = new PostgresSnapshotCollector(pg.server.pool(1));
    const past = pg.bull.queue('clock-past');
    const stamp = Date.now() - 3_600_000;
    await past.add('j', {}, { timestamp: stamp });
    const future = pg.bull.queue('clock-future');
    await future.add('j', {}, { timestamp: Date.now() + 3_600_000 });
    const before = Date.now();
    const snap = await collector.collect();
    const after = Date.now();
    const age = (name: string) => snap.queues.find((x) => x.ref.name === name)!.oldestWaitingAgeSeconds * 1000;
    expect(age('clock-past')).toBeGreaterThanOrEqual(before - stamp - 1);
    expect(age('clock-past')).toBeLessThanOrEqual(after - stamp + 1);
    // A job stamped in the future is not older than nothing.
    expect(age('clock-future')).toBe(0);
  });
});
