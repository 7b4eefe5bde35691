// Event accounting against a real 3-master Redis Cluster: a scripted BullMQ workload with known outcomes on
// queues spread over every master (per-queue hash tags: one stream per slot) and on queues sharing one slot
// (a `{grp}` prefix: several streams per XREAD and per commit), read by a sharded sidecar.
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownKeys, queueKey } from '../src/redis/keys.js';
import { type QueueRef } from '../src/domain/queue-ref.js';
import { keySlot } from '../src/redis/slots.js';
import { waitFor } from './helpers/bullmq.js';
import { seriesKey, type Series } from './helpers/prom-text.js';
import { startTestCluster, type TestCluster } from './helpers/redis-cluster.js';
import { testSidecar } from './helpers/sidecar.js';

let cluster: TestCluster;
const closers: Array<() => Promise<unknown>> = [];
const SPREAD: QueueRef[] = Array.from({ length: 6 }, (_, i) => ({ prefix: 'bull', name: `{ev${i}}` }));
const GROUPED: QueueRef[] = Array.from({ length: 3 }, (_, i) => ({ prefix: '{grp}', name: `g${i}` }));
const ALL = [...SPREAD, ...GROUPED];

beforeAll(async () => {
  cluster = await startTestCluster(3);
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(closers.reverse().map((c) => c()));
  await cluster?.stop();
});

interface Truth {
  added: number;
  completed: number;
  failed: number;
}

/** Queue i gets 20 + 3i jobs; every fifth fails for good. Returns the ground truth per queue. */
async function runWorkload(): Promise<Map<QueueRef, Truth>> {
  const truth = new Map<QueueRef, Truth>();
  let finished = 0;
  let expected = 0;
  for (const [i, q] of ALL.entries()) {
    const queue = new Queue(q.name, { prefix: q.prefix, connection: cluster.client() });
    closers.push(() => queue.close());
    const worker = new Worker(
      q.name,
      async (job) => {
        if ((job.data as { fail: boolean }).fail) throw new Error('terminal');
      },
      { prefix: q.prefix, connection: cluster.client(), concurrency: 5 },
    );
    worker.on('error', () => undefined);
    worker.on('completed', () => (finished += 1));
    worker.on('failed', () => (finished += 1));
    closers.push(() => worker.close(true));
    const n = 20 + 3 * i;
    const fails = Array.from({ length: n }, (_, j) => j % 5 === 0);
    await queue.addBulk(fails.map((fail) => ({ name: 'j', data: { fail } })));
    expected += n;
    const failed = fails.filter(Boolean).length;
    truth.set(q, { added: n, completed: n - failed, failed });
  }
  await waitFor('every job to finish', () => finished >= expected, 30_000);
  return truth;
}

async function entriesAdded(q: QueueRef): Promise<number> {
  const info = (await cluster.client().call('XINFO', 'STREAM', queueKey(q, 'events'))) as unknown[];
  return Number(info[info.indexOf('entries-added') + 1]);
}

describe('event accounting on Redis Cluster', () => {
  it('the test queues cover every master and share slots where the prefix is the tag', async () => {
    const slots = (await cluster.client().cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
    const owner = (q: QueueRef) => slots.find(([lo, hi]) => keySlot(queueKey(q, 'events')) >= lo && keySlot(queueKey(q, 'events')) <= hi)?.[2][1];
    expect(new Set(SPREAD.map(owner)).size).toBe(3);
    expect(new Set(GROUPED.map((q) => keySlot(queueKey(q, 'events')))).size).toBe(1);
  });

  it('counts every outcome exactly on every master, nothing lost, nothing twice', async () => {
    const s = await testSidecar('redis://127.0.0.1:6379', {
      redisClusterNodes: cluster.nodes.join(','),
      prefixes: 'bull,{grp}',
      collectInterval: '0.2',
      eventsLease: '2',
      eventsShards: '2',
      discoveryInterval: '0.3',
    });
    closers.push(() => s.close());
    await s.start();
    // Streams are counted from their first entry only when the reader was installed before it.
    await waitFor('the event reader to be installed', () => cluster.client().hexists(ownKeys.eventsMeta('queuelens'), 'installedAt'));
    const truth = await runWorkload();
    const m: Series = await waitFor(
      'the sidecar to account for every stream',
      async () => {
        const m = await s.scrape();
        for (const q of ALL) {
          const l = { prefix: q.prefix, queue: q.name };
          const read = m.get(seriesKey('bullmq_exporter_events_read_total', l)) ?? 0;
          const lost = m.get(seriesKey('bullmq_exporter_events_lost_total', l)) ?? 0;
          if (read + lost !== (await entriesAdded(q))) return false;
        }
        return m;
      },
      20_000,
    );
    for (const q of ALL) {
      const l = { prefix: q.prefix, queue: q.name };
      const t = truth.get(q)!;
      expect(m.get(seriesKey('bullmq_exporter_events_lost_total', l)), q.name).toBe(0);
      expect(m.get(seriesKey('bullmq_jobs_added_total', l)), q.name).toBe(t.added);
      expect(m.get(seriesKey('bullmq_jobs_completed_total', l)), q.name).toBe(t.completed);
      expect(m.get(seriesKey('bullmq_jobs_failed_total', l)), q.name).toBe(t.failed);
      // Completed and failed jobs together (outcomes are summed on /metrics: the series budget).
      expect(m.get(seriesKey('bullmq_job_e2e_seconds_count', l)), q.name).toBe(t.completed + t.failed);
    }
    expect(m.get('bullmq_exporter_leader')).toBe(1);
  });
});
