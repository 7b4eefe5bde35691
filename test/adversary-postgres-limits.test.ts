// Adversarial probe (issue 18): gauges a worker-side limiter, a global concurrency cap and a LIFO job set on
// PostgreSQL, against what the database holds: a queue held by a worker's own limiter (never stored in `meta`) reads
// rate limited; a queue held by its global concurrency does not; a LIFO job at the head gives the oldest waiting age
// of the job that runs next.
import { beforeAll, describe, expect, it } from 'vitest';
import type { QueueState } from '../src/domain/queue-snapshot.js';
import { PostgresSnapshotCollector } from '../src/postgres/snapshot.js';
import { usePostgresSuite } from './helpers/postgres-suite.js';

const POLL = { timeout: 60_000, interval: 200 };

describe('adversary: limiter, concurrency and LIFO gauges on PostgreSQL', () => {
  const pg = usePostgresSuite();
  let collector: PostgresSnapshotCollector;

  beforeAll(() => {
    collector = new PostgresSnapshotCollector(pg.server.pool(2));
  });

  const stateOf = async (name: string): Promise<QueueState> => {
    const snap = await collector.collect();
    expect(snap.ok, snap.error).toBe(true);
    return snap.queues.find((s) => s.ref.name === name)!;
  };

  it('reads a queue held by its worker’s own limiter as rate limited, with the held jobs waiting', async () => {
    const q = pg.bull.queue('limited');
    pg.bull.worker('limited', async () => 1, { limiter: { max: 1, duration: 3_600_000 } });
    for (let i = 0; i < 3; i++) await q.add('j', {});
    await expect.poll(async () => (await q.getJobCounts('completed')).completed, POLL).toBe(1);
    const s = await stateOf('limited');
    expect(s.jobs).toMatchObject({ waiting: 2, active: 0, completed: 1 });
    expect(s.rateLimited).toBe(true);
  });

  // OPEN (documented heuristic, docs/postgres.md §2.2 "as on Redis"): a worker's own limiter.max never reaches the
  // database, so an open limiter window with jobs waiting and none active reads as rate limited even when the window
  // is far from its max: here 1 point of 100 used, 2 jobs waiting, no worker running; BullMQ's own
  // getRateLimitTtl(100) says 0 (not limited), queuelens exports bullmq_queue_rate_limited 1.
  it.skip('does not read a limiter window far from its max as rate limited', async () => {
    const q = pg.bull.queue('roomy');
    const w = pg.bull.worker('roomy', async () => 1, { limiter: { max: 100, duration: 3_600_000 } });
    await q.add('j', {});
    await expect.poll(async () => (await q.getJobCounts('completed')).completed, POLL).toBe(1);
    await w.close();
    await q.add('j', {});
    await q.add('j', {});
    expect(await q.getRateLimitTtl(100)).toBe(0);
    const s = await stateOf('roomy');
    expect(s.jobs).toMatchObject({ waiting: 2, active: 0 });
    expect(s.rateLimited).toBe(false);
  });

  it('does not read a queue held by its global concurrency as rate limited', async () => {
    const q = pg.bull.queue('capped');
    await q.setGlobalConcurrency(1);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    pg.bull.worker('capped', () => held, { concurrency: 4 });
    for (let i = 0; i < 3; i++) await q.add('j', {});
    await expect.poll(async () => (await q.getJobCounts('active')).active, POLL).toBe(1);
    const s = await stateOf('capped');
    expect(s.jobs).toMatchObject({ waiting: 2, active: 1 });
    expect(s.rateLimited).toBe(false);
    release();
  });

  it('takes the oldest waiting age from the job that runs next when a LIFO job jumps the line', async () => {
    const q = pg.bull.queue('lifo');
    await q.add('old', {});
    await new Promise((r) => setTimeout(r, 50));
    const young = await q.add('young', {}, { lifo: true });
    const before = Date.now();
    const s = await stateOf('lifo');
    const after = Date.now();
    // The LIFO job runs first (ORDER BY priority, seq with a negative seq), so the head is the young job.
    expect(s.oldestWaitingAgeSeconds * 1000).toBeGreaterThanOrEqual(before - young.timestamp - 1);
    expect(s.oldestWaitingAgeSeconds * 1000).toBeLessThanOrEqual(after - young.timestamp + 1);
  });
});
