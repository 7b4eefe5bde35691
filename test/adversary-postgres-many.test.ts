// Adversarial probe (issue 18): hundreds of queues in one schema, among them hostile names (quotes, backslash,
// unicode, `:`-free BullMQ names up to 200 bytes) and dead-letter chains (`x-dlq`, `x-dlq-dlq`), through
// `queuelens sidecar --backend postgres`: every queue found, every waiting gauge and added counter equal to what was
// enqueued, the DLQ series on the source queue.
import { Queue, createPostgresBackend } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { usePostgresSuite } from './helpers/postgres-suite.js';
import { seriesKey, type Series } from './helpers/prom-text.js';

const POLL = { timeout: 120_000, interval: 500 };

describe('adversary: hundreds of queues on PostgreSQL', () => {
  const pg = usePostgresSuite();

  it('finds every queue and exports each one’s waiting jobs and adds exactly', async () => {
    const hostile = [`it's`, 'a"b', 'back\\slash', 'ünï-队列-🚀', `long-${'z'.repeat(195)}`, 'src', 'src-dlq', 'src-dlq-dlq', 'orphan-dlq'];
    const names = [...Array.from({ length: 240 }, (_, i) => `q${String(i).padStart(3, '0')}`), ...hostile];
    const enqueued = new Map<string, number>();
    for (const [i, name] of names.entries()) {
      // One Queue at a time, closed after its adds: hundreds of open pools would exhaust the server's connections.
      const q = new Queue(name, { connection: pg.bull.connection }, createPostgresBackend);
      // Some plain queues get no job; every hostile one gets 1 to 3.
      const n = i < 240 ? i % 4 : 1 + (i % 3);
      for (let j = 0; j < n; j++) await q.add('j', { j });
      await q.close();
      enqueued.set(name, n);
    }
    const s = await pg.sidecar();
    await s.refresh();
    await s.start();
    const read = async (): Promise<Series> => {
      await s.refresh();
      return s.scrape();
    };
    const jobs = (m: Series, queue: string) => m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bullmq', queue, state: 'waiting' }));
    const added = (m: Series, queue: string) => m.get(seriesKey('bullmq_jobs_added_total', { prefix: 'bullmq', queue })) ?? 0;
    await expect
      .poll(async () => {
        const m = await read();
        return names.filter((n) => added(m, n) !== enqueued.get(n) && !n.endsWith('-dlq') && !n.endsWith('-dlq-dlq'));
      }, POLL)
      .toEqual([]);
    const m = await read();
    // The queues BullMQ knows are those with a meta row (a Queue closed before writing its meta, with no job, is none).
    const known = await pg.server.pool(1).query<{ queue: string }>('SELECT DISTINCT queue FROM bullmq.meta');
    const knownNames = new Set(known.rows.map((r) => r.queue));
    for (const [name, n] of enqueued) if (n > 0) expect(knownNames.has(name), name).toBe(true);
    expect(m.get(seriesKey('bullmq_exporter_queues', { prefix: 'bullmq' }))).toBe(knownNames.size);
    const wrong = names.filter((n) => knownNames.has(n) && !n.endsWith('-dlq') && jobs(m, n) !== enqueued.get(n));
    expect(wrong).toEqual([]);
    // Dead-letter queues: src-dlq belongs to src, src-dlq-dlq to src-dlq; orphan-dlq has no source, so it is a queue.
    const dlqJobs = (queue: string) => m.get(seriesKey('bullmq_dlq_jobs', { prefix: 'bullmq', queue }));
    expect([dlqJobs('src'), dlqJobs('src-dlq')]).toEqual([enqueued.get('src-dlq'), enqueued.get('src-dlq-dlq')]);
    expect(jobs(m, 'orphan-dlq')).toBe(enqueued.get('orphan-dlq'));
    await expect
      .poll(async () => {
        const mm = await read();
        return [
          mm.get(seriesKey('bullmq_dlq_added_total', { prefix: 'bullmq', queue: 'src' })) ?? 0,
          mm.get(seriesKey('bullmq_dlq_added_total', { prefix: 'bullmq', queue: 'src-dlq' })) ?? 0,
        ];
      }, POLL)
      .toEqual([enqueued.get('src-dlq'), enqueued.get('src-dlq-dlq')]);
  }, 300_000);
});
