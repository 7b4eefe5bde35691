// The BullMQ versions the README says are tested: the pinned one, the last 5.x and the newest 6.x (installed as
// npm aliases), each running one compact workload with known ground truth against the same sidecar code:
// successes, retries, a final failure, a named worker, a pause with an old job waiting.
import * as pinned from 'bullmq';
import * as newest from 'bullmq-newest';
import * as v5 from 'bullmq5';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { seriesKey } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

type Bull = typeof pinned;
const VERSIONS: Array<[label: string, lib: Bull, version: string]> = [
  ['pinned', pinned, '6.7.0'],
  ['5.x', v5 as unknown as Bull, '5.81.5'],
  ['newest 6.x', newest as unknown as Bull, '6.7.6'],
];

let redis: TestRedis;
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe.each(VERSIONS)('BullMQ %s', (label, lib, version) => {
  it(`is version ${version}, and every number of a compact workload matches its ground truth`, async () => {
    const { readFileSync } = await import('node:fs');
    const pkg = label === 'pinned' ? 'bullmq' : label === '5.x' ? 'bullmq5' : 'bullmq-newest';
    expect(JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')).version).toBe(version);

    const name = `compat-${version.replace(/\./g, '-')}`;
    const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
    const queue = new lib.Queue(name, { connection });
    const s = await testSidecar(redis.url, { ownPrefix: `ql-compat-${version}`, collectInterval: '0.5' });
    let worker: InstanceType<Bull['Worker']> | undefined;
    try {
      await queue.waitUntilReady();
      await s.start(); // the reader watches the prefix and the (empty) queue from its start
      await waitFor('the reader leading', async () => (await s.scrape()).get(seriesKey('bullmq_exporter_leader')) === 1);

      // Ground truth: 10 succeed at once, 2 fail their first attempt and succeed on the retry, 1 fails for good.
      await queue.addBulk([
        ...Array.from({ length: 10 }, (_, i) => ({ name: 'ok', data: { kind: 'ok', i } })),
        ...Array.from({ length: 2 }, (_, i) => ({ name: 'flaky', data: { kind: 'flaky', i }, opts: { attempts: 2 } })),
        { name: 'bad', data: { kind: 'bad' }, opts: { attempts: 1 } },
      ]);
      worker = new lib.Worker(
        name,
        async (job) => {
          const { kind } = job.data as { kind: string };
          if (kind === 'bad' || (kind === 'flaky' && job.attemptsMade === 0)) throw new Error('no');
          return 'done';
        },
        { connection, concurrency: 2, name: 'compat' },
      );
      worker.on('error', () => undefined);
      await waitFor('12 completed, 1 failed', async () => {
        const c = await queue.getJobCounts('completed', 'failed');
        return c.completed === 12 && c.failed === 1;
      });

      const g =
        (metric: string, extra: Record<string, string> = {}) =>
        (m: Map<string, number>) =>
          m.get(seriesKey(metric, { prefix: 'bull', queue: name, ...extra }));
      const m = await waitFor('the events counted', async () => {
        await s.refresh();
        const x = await s.scrape();
        return g('bullmq_jobs_completed_total')(x) === 12 && g('bullmq_jobs_failed_total')(x) === 1 && x;
      });
      expect(g('bullmq_jobs_added_total')(m)).toBe(13);
      expect(g('bullmq_jobs_retried_total')(m)).toBe(2);
      expect(g('bullmq_jobs_stalled_total')(m)).toBe(0);
      expect(g('bullmq_exporter_events_lost_total')(m)).toBe(0);
      // /metrics sums attempts and outcomes (the series budget, docs/metrics.md): 13 first takes + 2 retries;
      // 12 completed + 2 retried + 1 failed attempts; 12 completed + 1 failed jobs.
      expect(g('bullmq_job_wait_seconds_count')(m)).toBe(13 + 2);
      expect(g('bullmq_job_processing_seconds_count')(m)).toBe(12 + 2 + 1);
      expect(g('bullmq_job_e2e_seconds_count')(m)).toBe(12 + 1);
      expect(g('bullmq_queue_jobs', { state: 'completed' })(m)).toBe(12);
      expect(g('bullmq_queue_jobs', { state: 'failed' })(m)).toBe(1);
      expect(g('bullmq_queue_workers')(m)).toBe(1);

      // Paused with one job waiting since an hour ago: paused, that job counted, its true age.
      await worker.close();
      await queue.pause();
      const [sec] = await redis.client().time();
      const ts = Number(sec) * 1000 - 3_600_000;
      await queue.add('late', {}, { timestamp: ts });
      await s.refresh();
      const p = await s.scrape();
      expect(g('bullmq_queue_paused')(p)).toBe(1);
      expect(g('bullmq_queue_jobs', { state: 'waiting' })(p)).toBe(1);
      expect(g('bullmq_queue_oldest_waiting_age_seconds')(p)).toBeGreaterThanOrEqual(3600);
    } finally {
      await worker?.close();
      await queue.close();
      await s.close();
    }
  });
});
