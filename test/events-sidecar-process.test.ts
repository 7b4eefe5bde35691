// Event accounting across real sidecar processes on one Redis: replicas export the same numbers, a
// SIGKILLed leader is replaced within its lease without double counting or resetting, and entries trimmed
// while no sidecar ran are counted as lost, exactly.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueKey, type QueueRef } from '../src/redis/keys.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { seriesKey, type Series } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { caughtUp as caughtUpIn, entriesAdded as entriesAddedIn, metric, queueLabels, startSidecarProcess, type SidecarProcess } from './helpers/sidecar-process.js';

const LEASE_S = 3;
let redis: TestRedis;
let raw: Redis;
let bull: BullFixtures;
const sidecars: SidecarProcess[] = [];

beforeAll(async () => {
  redis = await startTestRedis({ args: ['--stream-node-max-entries', '10'] });
  raw = redis.client();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  await Promise.all(sidecars.map((s) => s.stop()));
  await bull?.close();
  await redis?.stop();
});

const startSidecar = async (own: string, queues: string, leaseS = LEASE_S): Promise<SidecarProcess> => {
  const s = await startSidecarProcess({ redisUrl: redis.url, ownPrefix: own, queues, leaseSeconds: leaseS });
  sidecars.push(s);
  return s;
};
const labels = queueLabels;
const entriesAdded = (q: QueueRef) => entriesAddedIn(raw, q);
const caughtUp = (s: SidecarProcess, q: QueueRef) => caughtUpIn(s, raw, q);

/** Jobs that fail for good when i % 7 == 0, complete otherwise: ground truth per added batch. */
function workload(queue: Queue) {
  const truth = { added: 0, completed: 0, failed: 0 };
  let i = 0;
  return {
    truth,
    async add(n: number) {
      await queue.addBulk(Array.from({ length: n }, () => ({ name: 'j', data: { fail: i++ % 7 === 0 } })));
      truth.added += n;
      truth.failed += Array.from({ length: n }, (_, k) => (i - n + k) % 7 === 0).filter(Boolean).length;
      truth.completed = truth.added - truth.failed;
    },
  };
}

function startWorker(name: string): void {
  bull.worker(
    name,
    async (job) => {
      if ((job.data as { fail: boolean }).fail) throw new Error('terminal');
    },
    { concurrency: 10 },
  );
}

function eventSeries(m: Series): Record<string, number> {
  return Object.fromEntries([...m].filter(([k]) => /^bullmq_(jobs_|job_|exporter_events_|dlq_added)/.test(k)));
}

describe('event accounting across sidecar processes', () => {
  it('two replicas export identical counters; only one is leader', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'replicas' };
    const a = await startSidecar('ql-replicas', q.name);
    const b = await startSidecar('ql-replicas', q.name);
    const w = workload(bull.queue(q.name));
    startWorker(q.name);
    await w.add(200);
    const ma = await caughtUp(a, q);
    expect(ma.get(seriesKey('bullmq_jobs_completed_total', labels(q)))).toBe(w.truth.completed);
    await caughtUp(b, q);
    // Both have collected after the last batch: their event series are the same, value for value.
    await new Promise((r) => setTimeout(r, 500));
    const [fa, fb] = [await a.metrics(), await b.metrics()];
    expect(eventSeries(fa)).toEqual(eventSeries(fb));
    expect(fa.get(seriesKey('bullmq_jobs_added_total', labels(q)))).toBe(w.truth.added);
    expect(fa.get(seriesKey('bullmq_jobs_failed_total', labels(q)))).toBe(w.truth.failed);
    expect(fa.get(seriesKey('bullmq_job_e2e_seconds_count', { ...labels(q), outcome: 'completed' }))).toBe(w.truth.completed);
    expect((fa.get('bullmq_exporter_leader') ?? 0) + (fb.get('bullmq_exporter_leader') ?? 0)).toBe(1);
    for (const s of [a, b]) s.cli.proc.kill('SIGTERM');
    await Promise.all([a.cli.exited, b.cli.exited]);
  });

  it('SIGKILL of the leader mid-workload: the standby takes over within the lease, totals equal ground truth', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'failover' };
    const a = await startSidecar('ql-failover', q.name);
    const b = await startSidecar('ql-failover', q.name);
    const w = workload(bull.queue(q.name));
    startWorker(q.name);
    await w.add(100);
    const leaderOf = async () => ((await a.metrics()).get('bullmq_exporter_leader') === 1 ? a : (await b.metrics()).get('bullmq_exporter_leader') === 1 ? b : undefined);
    const leader = await waitFor('a leader', leaderOf);
    const standby = leader === a ? b : a;

    // Keep producing while the leader dies.
    let producing = true;
    const producer = (async () => {
      while (producing) {
        await w.add(20);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    leader.cli.proc.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor('the standby to become leader', async () => (await standby.metrics()).get('bullmq_exporter_leader') === 1, 3 * LEASE_S * 1000);
    const takeoverMs = Date.now() - killedAt;
    // Lease expiry (at most the lease after the last renewal) + a standby poll (lease/5) + one collection.
    expect(takeoverMs).toBeLessThanOrEqual(LEASE_S * 1000 * 1.2 + 500);
    await new Promise((r) => setTimeout(r, 500));
    producing = false;
    await producer;

    const m = await waitFor('every job accounted', async () => {
      const s = await caughtUp(standby, q);
      return s.get(seriesKey('bullmq_jobs_completed_total', labels(q))) === w.truth.completed && s;
    });
    expect(m.get(seriesKey('bullmq_jobs_added_total', labels(q)))).toBe(w.truth.added);
    expect(m.get(seriesKey('bullmq_jobs_failed_total', labels(q)))).toBe(w.truth.failed);
    expect(m.get(seriesKey('bullmq_exporter_events_lost_total', labels(q)))).toBe(0);
    expect(m.get(seriesKey('bullmq_exporter_events_read_total', labels(q)))).toBe(await entriesAdded(q));
    standby.cli.proc.kill('SIGTERM');
    await standby.cli.exited;
  });

  it('entries trimmed while the sidecar was stopped are counted as lost, exactly', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'trimmed' };
    const w = workload(bull.queue(q.name, { streams: { events: { maxLen: 50 } } }));
    startWorker(q.name);
    const first = await startSidecar('ql-trimmed', q.name);
    // Entries written before the reader first took the queue on are (by design) not history it owes: wait for it.
    await waitFor('the reader to take the queue on', async () => (await first.metrics()).has(seriesKey('bullmq_exporter_events_read_total', labels(q))), 20_000);
    await w.add(10);
    const before = await caughtUp(first, q);
    expect(before.get(seriesKey('bullmq_exporter_events_lost_total', labels(q)))).toBe(0);
    first.cli.proc.kill('SIGTERM');
    expect((await first.cli.exited).code).toBe(0);
    const addedAtStop = await entriesAdded(q);

    await w.add(200);
    await waitFor('the jobs to finish', async () => (await raw.zcard(queueKey(q, 'completed'))) + (await raw.zcard(queueKey(q, 'failed'))) === w.truth.added);
    const retained = await raw.xlen(queueKey(q, 'events'));
    const trimmedUnread = (await entriesAdded(q)) - addedAtStop - retained;
    expect(trimmedUnread).toBeGreaterThan(400);

    const second = await startSidecar('ql-trimmed', q.name);
    const after = await caughtUp(second, q);
    expect(after.get(seriesKey('bullmq_exporter_events_lost_total', labels(q)))).toBe(trimmedUnread);
    expect(after.get(seriesKey('bullmq_exporter_events_read_total', labels(q)))).toBe(addedAtStop + retained);
    second.cli.proc.kill('SIGTERM');
    await second.cli.exited;
  });

  it('a queue created after the sidecar started, found by discovery, is counted from its first job', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'late' };
    // No queue exists yet: the leader has nothing to follow, but its install time is what decides where
    // a later stream starts.
    const s = await startSidecarProcess({ redisUrl: redis.url, ownPrefix: 'ql-late' });
    sidecars.push(s);
    await waitFor('a leader', async () => (await s.metrics()).get('bullmq_exporter_leader') === 1);
    await new Promise((r) => setTimeout(r, 1000));
    const w = workload(bull.queue(q.name));
    await w.add(100);
    startWorker(q.name);
    const m = await waitFor('every job counted', async () => {
      const x = await caughtUp(s, q);
      return metric(x, 'bullmq_jobs_completed_total', q) === w.truth.completed && x;
    });
    expect(metric(m, 'bullmq_jobs_added_total', q)).toBe(w.truth.added);
    expect(metric(m, 'bullmq_jobs_failed_total', q)).toBe(w.truth.failed);
    await s.stop();
  });

  // Last: it freezes the shared Redis.
  it('SIGTERM while Redis hangs (SIGSTOPped): the leader still exits 0 within 5 s', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'hung' };
    // The default lease: its renewals and the reader's commands are the ones that used to wait forever.
    const s = await startSidecar('ql-hung', q.name, 10);
    const w = workload(bull.queue(q.name));
    await w.add(20);
    await waitFor('leader', async () => (await s.metrics()).get('bullmq_exporter_leader') === 1);
    await caughtUp(s, q);
    redis.pause();
    try {
      // Let the reader's next lease renewal and the collection get stuck on the frozen server.
      await new Promise((r) => setTimeout(r, 1500));
      const sentAt = Date.now();
      s.cli.proc.kill('SIGTERM');
      const { code } = await s.cli.exited;
      expect({ code, ms: Date.now() - sentAt < 5000 }).toEqual({ code: 0, ms: true });
      expect(s.cli.output()).not.toMatch(/unhandled|deadline passed/i);
    } finally {
      redis.resume();
    }
  }, 30_000);
});
