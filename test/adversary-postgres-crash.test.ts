// Adversarial probe (issue 18): PostgreSQL SIGKILLed and restarted in the middle of a workload (producers adding,
// workers finishing, the event leader reading), as a crash does it: open transactions lost, the event sequence jumping
// ahead on recovery. Ground truth: the `event` table after the workload. Nothing may be counted twice or lost.
import { describe, expect, it } from 'vitest';
import { usePostgresSuite } from './helpers/postgres-suite.js';
import { seriesKey } from './helpers/prom-text.js';

const POLL = { timeout: 120_000, interval: 300 };
const Q = 'crashy';

describe('adversary: PostgreSQL crash mid-workload under the sidecar', () => {
  const pg = usePostgresSuite();

  it('counts exactly what the event table holds after a crash and restart in the middle of the workload', async () => {
    const q = pg.bull.queue(Q);
    await q.add('first', {});
    const s = await pg.sidecar();
    await s.refresh();
    await s.start();
    const w = pg.bull.worker(Q, async () => new Promise((r) => setTimeout(() => r(1), 5)), { concurrency: 2, lockDuration: 2_000, stalledInterval: 1_000 });
    let added = 0;
    const produce = async (n: number) => {
      for (let i = 0; i < n; i++) {
        try {
          await q.add('j', { i });
          added++;
        } catch {
          // the server is down: this add did not happen (the event table says so)
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await produce(60);
    await pg.server.kill();
    const during = produce(20);
    await new Promise((r) => setTimeout(r, 300));
    await pg.server.restart();
    await during;
    await produce(60);
    expect(added).toBeGreaterThan(100);
    // The workload drains: nothing waiting, delayed or running.
    await expect
      .poll(async () => {
        const c = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
        return Object.values(c).reduce((a, b) => a + b, 0);
      }, POLL)
      .toBe(0);
    await w.close();

    const pool = pg.server.pool(1);
    const truth = async () => {
      const rows = (await pool.query<{ event: string; n: string }>('SELECT event, count(*)::text AS n FROM bullmq.event WHERE queue = $1 GROUP BY event', [Q]))
        .rows;
      const n = (k: string) => Number(rows.find((r) => r.event === k)?.n ?? 0);
      return {
        added: n('added'),
        completed: n('completed'),
        failed: n('failed') || undefined,
        stalled: n('stalled') || undefined,
        read: rows.reduce((a, r) => a + Number(r.n), 0),
        lost: 0,
      };
    };
    const key = (name: string) => seriesKey(name, { prefix: 'bullmq', queue: Q });
    const exported = async () => {
      await s.refresh();
      const m = await s.scrape();
      return {
        added: m.get(key('bullmq_jobs_added_total')),
        completed: m.get(key('bullmq_jobs_completed_total')),
        failed: m.get(key('bullmq_jobs_failed_total')) || undefined,
        stalled: m.get(key('bullmq_jobs_stalled_total')) || undefined,
        read: m.get(key('bullmq_exporter_events_read_total')),
        lost: m.get(key('bullmq_exporter_events_lost_total')),
      };
    };
    const t = await truth();
    expect(t.added).toBe(added + 1);
    await expect.poll(exported, POLL).toEqual(t);
    // And the gauges agree with BullMQ's own count.
    const counts = await q.getJobCounts('completed', 'failed');
    const m = await s.scrape();
    expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bullmq', queue: Q, state: 'completed' }))).toBe(counts.completed);
    expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bullmq', queue: Q, state: 'failed' }))).toBe(counts.failed);
  }, 300_000);
});
