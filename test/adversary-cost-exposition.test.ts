// Adversarial: per-queue fragments re-rendered only for changed queues, gauges absent while 0, a replica rendering
// the leader's snapshot. A gauge goes 0 -> 1 -> 0 -> 1 (an orphaned active job appears, is reclaimed, appears
// again; a queue paused, resumed, paused) with no other queue moving; at every step the text and the protobuf
// exposition of the leader and of a replica carry the same series with the same values, and equal what Redis
// holds. Ground truth: the lock keys' PTTL of the active ids, getJobCounts(), isPaused().
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricFamily } from '../src/metrics/client-model.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { parsePromText, seriesKey, type Series } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

const PROTOBUF = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';
const P = 'bull'; // the stuck worker fixture's prefix
const QUEUES = ['flip', 'still'];

let redis: TestRedis;
let bull: BullFixtures;
beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  await bull?.close();
  await redis?.stop();
});

type Sidecar = Awaited<ReturnType<typeof testSidecar>>;

/** Only the queue gauges (bullmq_queue_*) of the two queues, ages left out (they move with every collection). */
function mine(key: string): boolean {
  return key.startsWith('bullmq_queue_') && !key.includes('_age_seconds') && QUEUES.some((q) => key.includes(`queue="${q}"`));
}

async function textOf(s: Sidecar, gzip = false): Promise<Series> {
  const res = await s.app.inject({ url: '/metrics', headers: gzip ? { 'accept-encoding': 'gzip' } : {} });
  if (gzip) expect(res.headers['content-encoding']).toBe('gzip');
  const body = gzip ? gunzipSync(res.rawPayload).toString() : res.body;
  return new Map([...parsePromText(body)].filter(([k]) => mine(k)));
}

async function protoOf(s: Sidecar, gzip = false): Promise<Series> {
  const res = await s.app.inject({ url: '/metrics', headers: { accept: PROTOBUF, ...(gzip ? { 'accept-encoding': 'gzip' } : {}) } });
  expect(res.headers['content-type']).toContain('application/vnd.google.protobuf');
  if (gzip) expect(res.headers['content-encoding']).toBe('gzip');
  const r = protobuf.Reader.create(gzip ? gunzipSync(res.rawPayload) : res.rawPayload);
  const out: Series = new Map();
  while (r.pos < r.len) {
    const f = MetricFamily.toObject(MetricFamily.decodeDelimited(r), { longs: Number, arrays: true, defaults: true }) as {
      name: string;
      metric: Array<{ label: Array<{ name: string; value: string }>; gauge?: { value: number }; counter?: { value: number }; untyped?: { value: number } }>;
    };
    for (const m of f.metric) {
      const key = seriesKey(f.name, Object.fromEntries(m.label.map((l) => [l.name, l.value])));
      if (!mine(key)) continue;
      expect(out.has(key), `${key} twice in the protobuf`).toBe(false);
      out.set(key, (m.gauge ?? m.counter ?? m.untyped)!.value);
    }
  }
  return out;
}

const sorted = (s: Series) => JSON.stringify([...s].sort(([a], [b]) => (a < b ? -1 : 1)));

async function truth(flip: Queue, still: Queue): Promise<Map<string, number | undefined>> {
  const c = redis.client();
  try {
    const active = await c.lrange(`${P}:flip:active`, 0, -1);
    let orphaned = 0;
    for (const id of active) if ((await c.pttl(`${P}:flip:${id}:lock`)) === -2) orphaned += 1;
    const counts = await flip.getJobCounts('active', 'wait', 'completed');
    return new Map<string, number | undefined>([
      [seriesKey('bullmq_queue_orphaned_active_jobs', { prefix: P, queue: 'flip' }), orphaned === 0 ? undefined : orphaned],
      [seriesKey('bullmq_queue_jobs', { prefix: P, queue: 'flip', state: 'active' }), counts.active],
      [seriesKey('bullmq_queue_jobs', { prefix: P, queue: 'flip', state: 'waiting' }), counts.wait],
      [seriesKey('bullmq_queue_jobs', { prefix: P, queue: 'flip', state: 'completed' }), counts.completed],
      [seriesKey('bullmq_queue_paused', { prefix: P, queue: 'still' }), (await still.isPaused()) ? 1 : undefined],
    ]);
  } finally {
    c.disconnect();
  }
}

/** Waits until the leader's text equals Redis, then until all eight expositions (text, protobuf, each gzipped or not) agree. */
async function agreed(step: string, leader: Sidecar, replica: Sidecar, flip: Queue, still: Queue): Promise<Series> {
  // Redis is read again at every try: under load a live worker's lock can lapse for a moment and come back.
  let seen = '';
  await waitFor(
    `${step}: leader text equals Redis`,
    async () => {
      const want = await truth(flip, still);
      const t = await textOf(leader);
      seen = `want ${JSON.stringify([...want])}\nseen ${sorted(t)}`;
      return [...want].every(([k, v]) => t.get(k) === v);
    },
    60_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${seen}`);
  });
  let last = '';
  return waitFor(
    `${step}: text and protobuf of leader and replica agree`,
    async () => {
      const want = await truth(flip, still);
      const all = [
        await textOf(leader),
        await protoOf(leader),
        await textOf(leader, true),
        await protoOf(leader, true),
        await textOf(replica),
        await protoOf(replica),
        await textOf(replica, true),
        await protoOf(replica, true),
      ];
      last = all.map(sorted).join('\n');
      if (!all.every((s) => sorted(s) === sorted(all[0]!))) return false;
      for (const [k, v] of want) if (all[0]!.get(k) !== v) return false;
      return all[0];
    },
    60_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${last}`);
  });
}

describe('adversary: gauges to 0 and back under partial re-renders', () => {
  it('orphaned-active and paused (both absent while 0) flip 1 -> 0 -> 1: leader and replica, text and protobuf, plain and gzip, equal Redis at every step', async () => {
    const flip = bull.queue('flip', { prefix: P });
    const still = bull.queue('still', { prefix: P });
    await still.add('x', {});
    await flip.add('stuck', {});
    const stuck1 = await bull.stuckWorker('flip', 3000, { skipStalledCheck: true });
    const raw = { prefixes: P, ownPrefix: 'ql-adv-flip', collectInterval: '0.2', collectSweep: '1', events: 'true' };
    const leader = await testSidecar(redis.url, raw);
    await leader.start();
    await waitFor('leader leads', async () => (await leader.scrape()).get('bullmq_exporter_leader') === 1, 30_000);
    const replica = await testSidecar(redis.url, raw);
    await replica.start();
    try {
      let s = await agreed('stuck, lock held', leader, replica, flip, still);
      expect(s.get(seriesKey('bullmq_queue_orphaned_active_jobs', { prefix: P, queue: 'flip' }))).toBeUndefined();

      stuck1.proc.kill('SIGKILL');
      const c = redis.client();
      await waitFor('lock expiry', async () => (await c.pttl(`${P}:flip:${stuck1.jobId}:lock`)) === -2, 30_000);
      await still.pause();
      s = await agreed('orphan 1, paused 1', leader, replica, flip, still);
      expect(s.get(seriesKey('bullmq_queue_orphaned_active_jobs', { prefix: P, queue: 'flip' }))).toBe(1);
      expect(s.get(seriesKey('bullmq_queue_paused', { prefix: P, queue: 'still' }))).toBe(1);

      // A worker's stalled check reclaims the job and completes it: the orphan gauge goes (absent while 0).
      const w = bull.worker('flip', async () => 'ok', { prefix: P, stalledInterval: 300 });
      await waitFor('reclaimed and completed', async () => (await flip.getJobCounts('completed')).completed === 1, 30_000);
      await w.close();
      await still.resume();
      s = await agreed('orphan 0, paused 0', leader, replica, flip, still);
      expect(s.get(seriesKey('bullmq_queue_orphaned_active_jobs', { prefix: P, queue: 'flip' }))).toBeUndefined();
      expect(s.get(seriesKey('bullmq_queue_paused', { prefix: P, queue: 'still' }))).toBeUndefined();

      // And back.
      await flip.add('stuck', {});
      const stuck2 = await bull.stuckWorker('flip', 3000, { skipStalledCheck: true });
      stuck2.proc.kill('SIGKILL');
      await waitFor('second lock expiry', async () => (await c.pttl(`${P}:flip:${stuck2.jobId}:lock`)) === -2, 30_000);
      await still.pause();
      s = await agreed('orphan 1 again, paused 1 again', leader, replica, flip, still);
      expect(s.get(seriesKey('bullmq_queue_orphaned_active_jobs', { prefix: P, queue: 'flip' }))).toBe(1);
      expect(s.get(seriesKey('bullmq_queue_paused', { prefix: P, queue: 'still' }))).toBe(1);
      c.disconnect();
    } finally {
      await replica.close();
      await leader.close();
    }
  }, 180_000);
});
