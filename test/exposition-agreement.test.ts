// The text and protobuf expositions are two encodings of the same values (exposition-fragments.ts writes both from
// one call): on a real sidecar after real BullMQ traffic, with hostile queue, prefix and job names, every series of
// one is in the other with the same value, and both equal what the workload did. Rendering is proportional to
// change: an update re-renders only the queues whose values moved, and what it serves is byte for byte what a
// fresh render of everything gives; while a new body is written, scrapes get the previous complete one.
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOB_STATES, type CollectionSnapshot, type QueueState } from '../src/domain/queue-snapshot.js';
import { QueueAccounting } from '../src/events/accounting.js';
import { MetricFamily } from '../src/metrics/client-model.js';
import { EventMetrics } from '../src/metrics/event-metrics.js';
import { Exposition } from '../src/metrics/exposition.js';
import { QueueMetrics } from '../src/metrics/queue-metrics.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { parsePromText, seriesKey, type Series } from './helpers/prom-text.js';
import { protobufSeries } from './helpers/protobuf-series.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

const PROTOBUF = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';
const HOSTILE = ['quo"te \\ back\nslash ü 队列 🚀 ,}={', 'work'];
const ODD_PREFIX = 'pré"fix\\{x}';
const JOB_NAMES = ['plain', 'say "hi"\\ \n,le="1"}'];
const OK_PER_NAME = 3;

interface Decoded {
  name: string;
  type: number;
  metric: Array<{
    label: Array<{ name: string; value: string }>;
    gauge?: { value: number };
    counter?: { value: number };
    untyped?: { value: number };
    histogram?: { schema?: number; sampleCount: number; sampleSum: number; bucket: Array<{ cumulativeCount: number; upperBound: number }> };
  }>;
}

function decode(body: Buffer): Decoded[] {
  const r = protobuf.Reader.create(body);
  const out: Decoded[] = [];
  while (r.pos < r.len) out.push(MetricFamily.toObject(MetricFamily.decodeDelimited(r), { longs: Number, arrays: true, defaults: true }) as Decoded);
  return out;
}

const ours = (s: Series) => new Map([...s].filter(([k]) => k.startsWith('bullmq_')));

describe('text and protobuf agree', () => {
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

  it('series by series on a sidecar after real traffic, hostile queue, prefix and job names included, and equal to what was done', async () => {
    const queues = [...HOSTILE.map((name) => ({ prefix: 'bull', name })), { prefix: ODD_PREFIX, name: 'plain' }];
    for (const q of queues) await bull.queue(q.name, { prefix: q.prefix }).add('seed', {});
    await bull.queue('work-dlq').add('parked', {});
    const s = await testSidecar(redis.url, { ownPrefix: 'ql-agree', prefixes: `bull,${ODD_PREFIX}`, jobNameLabel: 'true' });
    try {
      await s.start();
      await waitFor('every queue followed', async () => {
        await s.refresh();
        const m = await s.scrape();
        return queues.every((q) => m.has(seriesKey('bullmq_jobs_added_total', { prefix: q.prefix, queue: q.name })));
      });
      for (const q of queues) {
        await bull.queue(q.name, { prefix: q.prefix }).drain();
        bull.worker(
          q.name,
          async (job) => {
            if (job.name === 'fail') throw new Error('fails every attempt');
            return 'ok';
          },
          { prefix: q.prefix, concurrency: 4 },
        );
        for (const name of JOB_NAMES) await bull.queue(q.name, { prefix: q.prefix }).addBulk(Array.from({ length: OK_PER_NAME }, () => ({ name, data: {} })));
        await bull.queue(q.name, { prefix: q.prefix }).add('fail', {}, { attempts: 2 });
      }
      await waitFor(
        'every job counted',
        async () => {
          await s.refresh();
          const m = await s.scrape();
          return queues.every(
            (q) =>
              JOB_NAMES.every((job_name) => m.get(seriesKey('bullmq_jobs_completed_total', { prefix: q.prefix, queue: q.name, job_name })) === OK_PER_NAME) &&
              m.get(seriesKey('bullmq_jobs_failed_total', { prefix: q.prefix, queue: q.name, job_name: 'fail' })) === 1,
          );
        },
        60_000,
      );
      // Both scrapes from the same values: a collection that lands between them (a late event's prompt one) is
      // another pair.
      let text: Series = new Map();
      let families: Decoded[] = [];
      let proto: Series = new Map();
      for (let attempt = 0; attempt < 5; attempt += 1) {
        await s.refresh();
        text = ours(parsePromText((await s.app.inject({ url: '/metrics' })).body));
        const res = await s.app.inject({ url: '/metrics', headers: { accept: PROTOBUF } });
        expect(res.headers['content-type']).toContain('application/vnd.google.protobuf');
        families = decode(res.rawPayload);
        proto = ours(protobufSeries(res.rawPayload));
        if (JSON.stringify([...proto].sort()) === JSON.stringify([...text].sort())) break;
      }

      expect(proto.size).toBeGreaterThan(100);
      expect(proto).toEqual(text);
      // And both equal the workload: per queue and job name, the completions; processing observed for each attempt.
      for (const q of queues) {
        for (const job_name of JOB_NAMES) {
          const l = { prefix: q.prefix, queue: q.name, job_name };
          expect(proto.get(seriesKey('bullmq_jobs_completed_total', l)), JSON.stringify(l)).toBe(OK_PER_NAME);
          expect(proto.get(seriesKey('bullmq_job_e2e_seconds_count', l)), JSON.stringify(l)).toBe(OK_PER_NAME);
        }
        const fail = { prefix: q.prefix, queue: q.name, job_name: 'fail' };
        expect(proto.get(seriesKey('bullmq_jobs_retried_total', fail))).toBe(1);
        expect(proto.get(seriesKey('bullmq_job_processing_seconds_count', fail))).toBe(2);
        const processing = families.find((f) => f.name === 'bullmq_job_processing_seconds')!;
        const h = processing.metric.find((m) => m.label.some((x) => x.name === 'queue' && x.value === q.name) && m.label.some((x) => x.value === 'plain'))!;
        expect(h.histogram!.schema).toBe(2);
      }
      expect(proto.get(seriesKey('bullmq_dlq_jobs', { prefix: 'bull', queue: 'work' }))).toBe(1);
    } finally {
      await s.close();
    }
  }, 120_000);
});

function state(i: number, moved: number): QueueState {
  return {
    ref: { prefix: 'bull', name: i % 7 === 0 ? `q"\\\n${i}` : `q${i}` },
    jobs: Object.fromEntries(JOB_STATES.map((st, k) => [st, i + k + moved])) as QueueState['jobs'],
    paused: i % 5 === 0,
    oldestWaitingAgeSeconds: i + moved,
    delayedOverdue: 0,
    oldestActiveAgeSeconds: 0,
    orphanedActive: i % 11 === 0 ? 1 : 0,
    workers: 1,
    rateLimited: false,
    ...(i % 13 === 0 ? { dlqOf: `src${i}` } : {}),
  } as QueueState;
}

function snapshot(seq: number, n: number, moved: (i: number) => number): CollectionSnapshot {
  return {
    seq,
    ok: true,
    redisUp: true,
    durationSeconds: 0.1,
    lastSuccessAt: 1_700_000_000_000,
    queuesDropped: 0,
    queuesByPrefix: { bull: n },
    queues: Array.from({ length: n }, (_, i) => state(i, moved(i))),
  } as unknown as CollectionSnapshot;
}

function accounting(i: number, extra: number) {
  const acc = new QueueAccounting();
  for (let k = 0; k < 3 + extra; k += 1) {
    acc.count('added', '');
    acc.count('completed', '');
    acc.observe('wait', 'first', '', 5 + k * 97);
    acc.observe('processing', 'completed', '', 20 + i);
    acc.observe('e2e', 'completed', '', 40 + k * 1000);
  }
  acc.reader('read', 9 + extra);
  return { queue: { prefix: 'bull', name: `q${i}` }, stats: acc.toStats() };
}

/** Both parts, both formats, as bytes; process metrics (re-read each render) cut off. */
async function bodies(e: Exposition): Promise<string[]> {
  const text = (await e.render('text')).body.toString();
  const proto = ours(protobufSeries((await e.render('protobuf')).body));
  return [text.slice(text.indexOf('# HELP bullmq_queue_jobs'), text.indexOf('# HELP process_')), JSON.stringify([...proto])];
}

describe('rendering proportional to change', () => {
  it('re-renders only the queues that moved, and serves what a fresh render of everything gives', async () => {
    const N = 300;
    const e = new Exposition(60_000);
    const qm = new QueueMetrics(e);
    const em = new EventMetrics(e);
    await qm.update(snapshot(1, N, () => 0));
    await em.update({ leader: true, queues: Array.from({ length: N }, (_, i) => accounting(i, 0)) });
    expect(qm.lastRendered).toBe(N);
    expect(em.lastRendered).toBe(N);
    await bodies(e);

    // 10% of the queues move: their gauges and their accounting.
    const moved = (i: number) => (i % 10 === 3 ? 1 : 0);
    const next = snapshot(2, N, moved);
    const acc = Array.from({ length: N }, (_, i) => accounting(i, moved(i)));
    await qm.update(next);
    await em.update({ leader: true, queues: acc });
    expect(qm.lastRendered).toBe(N / 10);
    expect(em.lastRendered).toBe(N / 10);

    const fresh = new Exposition(60_000);
    const fq = new QueueMetrics(fresh);
    const fe = new EventMetrics(fresh);
    await fq.update(next);
    await fe.update({ leader: true, queues: acc });
    expect(await bodies(e)).toEqual(await bodies(fresh));

    // A queue gone from the snapshot is gone from both formats.
    await qm.update(snapshot(3, N - 1, moved));
    const [text] = await bodies(e);
    expect(text).not.toContain(`bullmq_queue_jobs{prefix="bull",queue="q${N - 1}"`);
    expect(text).toContain(`bullmq_queue_jobs{prefix="bull",queue="q${N - 2}"`);
    expect(qm.lastRendered).toBe(0);
  });

  it('a queue whose only change is its age keeps its fragment; its ages, waiting and active, dead-letter too, are exact', async () => {
    const N = 300;
    const e = new Exposition(60_000);
    const qm = new QueueMetrics(e);
    await qm.update(snapshot(1, N, () => 0));
    expect(qm.lastRendered).toBe(N);
    // Every queue's ages move with the clock, nothing else does.
    const aged = (seq: number, by: number) => {
      const s = snapshot(seq, N, () => 0);
      for (const q of s.queues) {
        q.oldestWaitingAgeSeconds += by;
        q.oldestActiveAgeSeconds += by / 2;
      }
      return s;
    };
    const next = aged(2, 7.25);
    await qm.update(next);
    expect(qm.lastRendered).toBe(0);
    const fresh = new Exposition(60_000);
    await new QueueMetrics(fresh).update(next);
    const [text, proto] = await bodies(e);
    expect([text, proto]).toEqual(await bodies(fresh));
    // Every queue's ages as set, in both formats (hostile names and dead-letter queues' sources included).
    const fromProto = new Map(JSON.parse(proto!) as Array<[string, number]>);
    const fromText = parsePromText(text!);
    for (const series of [fromProto, fromText]) {
      for (const q of next.queues) {
        const labels = { prefix: 'bull', queue: q.ref.name };
        expect(series.get(seriesKey('bullmq_queue_oldest_waiting_age_seconds', labels))).toBe(q.oldestWaitingAgeSeconds);
        expect(series.get(seriesKey('bullmq_queue_oldest_active_age_seconds', labels))).toBe(q.oldestActiveAgeSeconds);
        if (q.dlqOf !== undefined) {
          expect(series.get(seriesKey('bullmq_dlq_oldest_age_seconds', { prefix: 'bull', queue: q.dlqOf }))).toBe(q.oldestWaitingAgeSeconds);
        }
      }
    }
    expect(next.queues.some((q) => q.dlqOf !== undefined && q.ref.name.includes('"'))).toBe(true);
  });

  it('serves the previous complete body while the next is written, and the new one once published', async () => {
    const N = 2000;
    const e = new Exposition(60_000);
    const qm = new QueueMetrics(e);
    await qm.update(snapshot(1, N, () => 0));
    const before = (await e.render('text')).body;
    const publishing = qm.update(snapshot(2, N, () => 1));
    const during: Buffer[] = [];
    let done = false;
    void publishing.then(() => (done = true));
    while (!done) {
      during.push((await e.render('text')).body);
      await new Promise((r) => setImmediate(r));
    }
    await publishing;
    const after = (await e.render('text')).body;
    // Gzipped, the same bytes: one member per part, read as one stream.
    expect(gunzipSync((await e.render('text', true)).body).equals(after)).toBe(true);
    expect(after.equals(before)).toBe(false);
    for (const b of during) expect(b.equals(before) || b.equals(after)).toBe(true);
    const m = parsePromText(after.toString());
    expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'q1', state: 'waiting' }))).toBe(2);
  });
});
