// The series budget, measured on real sidecars' /metrics after a real workload with every outcome (jobs completed,
// failed for good, retried, stalled and re-run): how many series one queue costs in each mode (classic text,
// native histograms in the protobuf exposition, --histograms per-prefix and off), what an idle queue and a
// dead-letter queue cost, and that the exporter says what it is. docs/metrics.md (cardinality) states the same
// numbers (seriesPerQueue), so the table cannot drift from what is served.
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricFamily } from '../src/metrics/client-model.js';
import { seriesPerQueue } from '../src/metrics/metrics-doc.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { seriesKey, type Series } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

const PROTOBUF = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3';
const MODES = ['per-queue', 'per-prefix', 'off'] as const;
type Sidecar = Awaited<ReturnType<typeof testSidecar>>;

let redis: TestRedis;
let bull: BullFixtures;
const sidecars = new Map<(typeof MODES)[number], Sidecar>();
/** Ground truth: what the workload below makes happen on `work`. */
const OK_JOBS = 10;

interface Decoded {
  name: string;
  type: number;
  metric: Array<{ label: Array<{ name: string; value: string }>; histogram?: { schema?: number; sampleCount: number; bucket: unknown[] } }>;
}

async function scrapeProtobuf(s: Sidecar): Promise<Decoded[]> {
  const res = await s.app.inject({ method: 'GET', url: '/metrics', headers: { accept: PROTOBUF } });
  expect(res.headers['content-type']).toBe('application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited');
  const r = protobuf.Reader.create(res.rawPayload);
  const out: Decoded[] = [];
  while (r.pos < r.len) out.push(MetricFamily.toObject(MetricFamily.decodeDelimited(r), { longs: Number, arrays: true }) as Decoded);
  return out;
}

const ofQueue = (labels: Array<{ name: string; value: string }>, queue: string) => labels.some((l) => l.name === 'queue' && l.value === queue);

/** Series of one queue as a Prometheus with native histograms stores them: a native histogram is one series. */
function nativeSeriesOfQueue(families: Decoded[], queue: string): number {
  let n = 0;
  for (const f of families) {
    for (const m of f.metric) {
      if (!ofQueue(m.label, queue)) continue;
      if (m.histogram === undefined) n += 1;
      else if (m.histogram.schema !== undefined) n += 1;
      else n += m.histogram.bucket.length + 2;
    }
  }
  return n;
}

/** Series of one queue in the text format: every sample whose labels name it. */
function seriesOfQueue(m: Series, queue: string): string[] {
  return [...m.keys()].filter((k) => k.includes(`queue="${queue}"`));
}

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  const work = bull.queue('work');
  await work.add('seed', {});
  await bull.queue('work-dlq').add('parked', {});
  await bull.queue('idle').add('seed', {});
  for (const mode of MODES) {
    const s = await testSidecar(redis.url, { ownPrefix: `ql-budget-${mode}`, queues: undefined, histograms: mode });
    sidecars.set(mode, s);
    await s.start();
  }
  for (const s of sidecars.values()) {
    await waitFor('every queue registered', async () => {
      await s.refresh();
      const m = await s.scrape();
      return ['work', 'idle', 'work-dlq'].every((q) => m.has(seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: q })));
    });
  }
  // The jobs that made the queues discoverable were added before the readers followed them: out of the counts.
  await work.drain();

  // A job taken by a worker that dies mid-job: its lock expires, the next worker's stall check re-runs it.
  await work.add('stall', {});
  const stuck = await bull.stuckWorker('work', 500, { skipStalledCheck: true });
  stuck.proc.kill('SIGKILL');
  bull.worker(
    'work',
    async (job) => {
      if (job.name === 'fail') throw new Error('fails every attempt');
      return 'ok';
    },
    { concurrency: 5, stalledInterval: 300, lockDuration: 1000 },
  );
  await work.addBulk(Array.from({ length: OK_JOBS }, () => ({ name: 'ok', data: {} })));
  await work.add('fail', {}, { attempts: 2 });
  for (const s of sidecars.values()) {
    await waitFor(
      'every outcome counted',
      async () => {
        await s.refresh();
        const m = await s.scrape();
        const c = (name: string) => m.get(seriesKey(`bullmq_jobs_${name}_total`, { prefix: 'bull', queue: 'work' }));
        return c('completed') === OK_JOBS + 1 && c('failed') === 1 && c('retried') === 1 && c('stalled') === 1;
      },
      60_000,
    );
  }
}, 120_000);

afterAll(async () => {
  for (const s of sidecars.values()) await s.close().catch(() => undefined);
  await bull?.close();
  await redis?.stop();
});

describe('series budget', () => {
  const n = seriesPerQueue();
  // Ground truth of the workload: takes (10 ok, 2 of the failing job, 2 of the stalled one), attempts observed
  // (11 completed, 2 failed: the stalled attempt is counted, not observed), final outcomes (11 + 1).
  const counts = { bullmq_job_wait_seconds: OK_JOBS + 4, bullmq_job_processing_seconds: OK_JOBS + 3, bullmq_job_e2e_seconds: OK_JOBS + 2 };

  it('classic: a queue with every outcome costs at most 60 series, its latency summed over attempts and outcomes', async () => {
    const m = await sidecars.get('per-queue')!.scrape();
    const q = { prefix: 'bull', queue: 'work' };
    for (const [name, count] of Object.entries(counts)) {
      expect(m.get(seriesKey(`${name}_count`, q)), name).toBe(count);
      expect(m.get(seriesKey(`${name}_bucket`, { ...q, le: '+Inf' })), name).toBe(count);
    }
    const work = seriesOfQueue(m, 'work');
    expect(work.length).toBe(n.classic.withTraffic + n.dlqAddsToSource);
    expect(work.length).toBeLessThanOrEqual(60);
    expect(seriesOfQueue(m, 'idle').length).toBe(n.classic.idle);
    // The dead-letter queue: depth, age, counters, reader health; no latency histogram.
    const dlqSeries = seriesOfQueue(m, 'work-dlq');
    expect(m.get(seriesKey('bullmq_dlq_jobs', q))).toBe(1);
    expect(dlqSeries.filter((k) => k.startsWith('bullmq_job_'))).toEqual([]);
    expect(dlqSeries.length).toBe(n.deadLetterQueue);

    const info = [...m.keys()].filter((k) => k.startsWith('bullmq_exporter_build_info'));
    expect(info).toHaveLength(1);
    expect(info[0]).toContain(`nodejs_version="${process.version}"`);
    expect(m.get(info[0] as string)).toBe(1);
  });

  it('native: the protobuf exposition carries one native histogram per latency, with exact counts, and at most 25 series per queue with a dead-letter queue', async () => {
    const families = await scrapeProtobuf(sidecars.get('per-queue')!);
    for (const [name, count] of Object.entries(counts)) {
      const f = families.find((x) => x.name === name)!;
      const h = f.metric.find((m) => ofQueue(m.label, 'work'))!.histogram!;
      expect(h.schema, name).toBe(2);
      expect(h.sampleCount, name).toBe(count);
    }
    expect(nativeSeriesOfQueue(families, 'work')).toBe(n.native.withTraffic + n.dlqAddsToSource);
    // The budget counts the dead-letter queue's depth and age under the source queue too.
    expect(nativeSeriesOfQueue(families, 'work')).toBeLessThanOrEqual(25);
    expect(nativeSeriesOfQueue(families, 'idle')).toBe(n.native.idle);
    expect(nativeSeriesOfQueue(families, 'work-dlq')).toBe(n.deadLetterQueue);
    // The same families as the text, sample for sample where there is no histogram.
    const text = await sidecars.get('per-queue')!.scrape();
    for (const f of families.filter((x) => x.name.startsWith('bullmq_queue_') || x.name.startsWith('bullmq_jobs_'))) {
      for (const m of f.metric) {
        const labels = Object.fromEntries(m.label.map((l) => [l.name, l.value]));
        const value = (m as unknown as Record<string, { value?: number } | undefined>)[f.type === 0 ? 'counter' : 'gauge']?.value ?? 0;
        expect(text.get(seriesKey(f.name, labels)), `${f.name} ${JSON.stringify(labels)}`).toBe(value);
      }
    }
  });

  it('per-prefix and off: no histogram per queue; per-prefix one set per prefix with the counts of all its queues', async () => {
    for (const mode of ['per-prefix', 'off'] as const) {
      const s = sidecars.get(mode)!;
      const m = await s.scrape();
      expect(seriesOfQueue(m, 'work').length, mode).toBe(n.aggregate.withTraffic + n.dlqAddsToSource);
      expect(seriesOfQueue(m, 'idle').length, mode).toBe(n.aggregate.idle);
      expect(
        [...m.keys()].filter((k) => k.startsWith('bullmq_job_') && k.includes('queue=')),
        mode,
      ).toEqual([]);
      const families = await scrapeProtobuf(s);
      expect(nativeSeriesOfQueue(families, 'work'), mode).toBe(n.aggregate.withTraffic + n.dlqAddsToSource);
      const prefixSeries = [...m.keys()].filter((k) => k.startsWith('bullmq_job_'));
      if (mode === 'off') {
        expect(prefixSeries, mode).toEqual([]);
        continue;
      }
      expect(prefixSeries.length).toBe(n.perPrefix.classic);
      for (const [name, count] of Object.entries(counts)) {
        expect(m.get(seriesKey(`${name}_count`, { prefix: 'bull' })), name).toBe(count);
        const h = families.find((x) => x.name === name)!.metric;
        expect(h).toHaveLength(1);
        expect(h[0]!.label).toEqual([{ name: 'prefix', value: 'bull' }]);
        expect(h[0]!.histogram!.sampleCount).toBe(count);
      }
    }
  });
});
