// Adversarial probe (issue 18): event counters of `queuelens sidecar --backend postgres` against the `event` table
// and the scripted workload, for a workload the authors' tests do not run: a stalled job (its worker stopped without
// releasing it, reclaimed by another), retries with backoff, a final failure, deduplication, count retention,
// priorities with pause/resume, delayed jobs becoming due. Two replicas are started only after the workload (the
// retained history is read), and must render the same counters.
import type { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { eventCounters, freshMetrics, usePostgresSuite } from './helpers/postgres-suite.js';

const POLL = { timeout: 90_000, interval: 250 };
const Q = 'adv-ev';

describe('adversary: event counters on PostgreSQL against the event table', () => {
  const pg = usePostgresSuite();

  it('counts a stalled job, retries, a failure, dedup, retention and a paused backlog exactly as the event table says, on two late replicas', async () => {
    const q = pg.bull.queue(Q);
    // 1. A job whose worker stops renewing its lock and goes away: another worker reclaims it (stalled) and runs it.
    const hang = pg.bull.worker(Q, () => new Promise(() => undefined), { lockDuration: 1_000, stalledInterval: 3_600_000 });
    await q.add('stall', {});
    await expect.poll(async () => (await q.getJobCounts('active')).active, POLL).toBe(1);
    await hang.close(true);
    let attemptsOfRetry = 0;
    const processor = async (job: Job) => {
      if (job.name === 'flaky' && job.attemptsMade < 2) {
        attemptsOfRetry++;
        throw new Error('not yet');
      }
      if (job.name === 'doomed') throw new Error('never');
      return 1;
    };
    pg.bull.worker(Q, processor, { lockDuration: 1_000, stalledInterval: 500, concurrency: 2 });
    await expect.poll(async () => (await q.getJobCounts('completed')).completed, POLL).toBe(1);

    // 2. Paused with a backlog of prioritized and plain jobs, a delayed job becoming due, dedup, then resumed.
    await q.pause();
    await q.add('prio', {}, { priority: 5 });
    await q.add('prio', {}, { priority: 1 });
    await q.add('plain', {}, { removeOnComplete: { count: 1 } });
    await q.add('plain', {}, { removeOnComplete: { count: 1 } });
    await q.add('soon', {}, { delay: 200 });
    await q.add('dedup', {}, { deduplication: { id: 'd1', ttl: 3_600_000 } });
    await q.add('dedup', {}, { deduplication: { id: 'd1', ttl: 3_600_000 } });
    await q.add('flaky', {}, { attempts: 3, backoff: { type: 'fixed', delay: 20 } });
    await q.add('flaky', {}, { attempts: 3, backoff: { type: 'fixed', delay: 20 } });
    await q.add('doomed', {}, { attempts: 2 });
    await q.resume();
    // Finished: stall 1, prio 2, plain 2 (one retained), soon 1, dedup 1, flaky 2 → 9 completed events; doomed failed.
    await expect
      .poll(async () => {
        const rows = await pg.server
          .pool(1)
          .query<{ event: string; n: string }>(
            "SELECT event, count(*)::text AS n FROM bullmq.event WHERE queue = $1 AND event IN ('completed','failed') GROUP BY event ORDER BY event",
            [Q],
          );
        return rows.rows.map((r) => `${r.event}:${r.n}`);
      }, POLL)
      .toEqual(['completed:9', 'failed:1']);
    expect(attemptsOfRetry).toBe(4);

    // Ground truth from the event table.
    const pool = pg.server.pool(1);
    const byKind = new Map(
      (await pool.query<{ event: string; n: string }>('SELECT event, count(*)::text AS n FROM bullmq.event WHERE queue = $1 GROUP BY event', [Q])).rows.map(
        (r) => [r.event, Number(r.n)],
      ),
    );
    const total = (await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM bullmq.event WHERE queue = $1', [Q])).rows[0]!.n;
    expect(byKind.get('stalled')).toBe(1);
    expect(byKind.get('deduplicated')).toBe(1);

    // Two replicas started after the workload.
    const a = await pg.sidecar();
    const b = await pg.sidecar();
    for (const s of [a, b]) {
      await s.refresh();
      await s.start();
    }
    const counters = async (s: typeof a) =>
      eventCounters(await freshMetrics(s), Q, ['added', 'completed', 'failed', 'retried', 'stalled', 'deduplicated', 'read', 'lost']);
    const truth = {
      added: byKind.get('added'),
      completed: 9,
      failed: 1,
      // flaky: 2 jobs × 2 failed attempts with a backoff; doomed: 1 attempt retried at once.
      retried: 5,
      stalled: 1,
      deduplicated: 1,
      read: Number(total),
      lost: 0,
    };
    // stall 1, prio 2, plain 2, soon 1, dedup 1 (the second add deduplicated), flaky 2, doomed 1.
    expect(truth.added).toBe(10);
    await expect.poll(() => counters(a), POLL).toEqual(truth);
    await expect.poll(() => counters(b), POLL).toEqual(truth);
  }, 300_000);
});
