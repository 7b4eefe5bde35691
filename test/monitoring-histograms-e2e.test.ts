// The latency histograms in every exposition mode, end to end against the real Debian Prometheus: two
// `queuelens sidecar` processes on one Redis (--histograms per-queue and per-prefix), each scraped by a Prometheus
// that keeps classic histograms (it negotiates the text formats) and by one started with
// --enable-feature=native-histograms (it negotiates the protobuf exposition and stores native histograms). All four
// load the rules generated from the test settings. A worker runs jobs of a known duration more slowly than they
// arrive, so jobs wait past the wait-time SLO threshold. In every mode: the latency panels' queries of both
// dashboards return values, the processing-time quantile matches the durations Redis recorded for the jobs, and
// the wait-time SLO alerts fire. In native mode, Prometheus holds native histograms and no classic buckets, with
// exact counts, and a queue costs the series docs/metrics.md states.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildRuleGroups, renderRulesYaml } from '../src/monitoring/alert-rules.js';
import { buildDashboards } from '../src/monitoring/dashboards.js';
import { EXPOSED_BUCKETS_SECONDS, nativeBucketIndex, nativeBucketUpper } from '../src/events/buckets.js';
import { seriesPerQueue } from '../src/metrics/metrics-doc.js';
import { settings, type MonitoringSettings } from '../src/thresholds/monitoring-settings.js';
import { waitFor } from './helpers/bullmq.js';
import { spawnCli, type CliProcess } from './helpers/cli.js';
import { panelQueries, substituteVariables, type Dashboard } from './helpers/dashboards.js';
import { startPrometheus, TEST_BURN_RATES, type RunningPrometheus } from './helpers/prometheus.js';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';

const testSettings: MonitoringSettings = {
  ...settings,
  burnRates: TEST_BURN_RATES,
  // 1 s is a bucket bound of the classic wait histogram and of every native schema.
  defaults: { ...settings.defaults, waitSlo: { thresholdSeconds: 1, objective: 0.9, minJobs: 1 } },
};
const PREFIX = 'hist';
const QUEUE = 'lat';
const JOB_MS = 300;
const LATENCY_PANELS = ['Wait time', 'Processing time', 'End-to-end time'];

interface Mode {
  name: 'classic' | 'native' | 'per-prefix classic' | 'per-prefix native';
  sidecar: 'per-queue' | 'per-prefix';
  native: boolean;
  prometheus?: RunningPrometheus;
}
const MODES: Mode[] = [
  { name: 'classic', sidecar: 'per-queue', native: false },
  { name: 'native', sidecar: 'per-queue', native: true },
  { name: 'per-prefix classic', sidecar: 'per-prefix', native: false },
  { name: 'per-prefix native', sidecar: 'per-prefix', native: true },
];

let redis: TestRedis;
let dir: string;
let queue: Queue;
let worker: Worker | undefined;
let producing: NodeJS.Timeout | undefined;
const sidecars: CliProcess[] = [];

/** The queue's own labels in a mode: per prefix, the series carry no queue label. */
const own = (m: Mode) => (m.sidecar === 'per-queue' ? `prefix="${PREFIX}", queue="${QUEUE}"` : `prefix="${PREFIX}"`);

beforeAll(async () => {
  redis = await startTestRedis();
  dir = mkdtempSync(join(tmpdir(), 'queuelens-histograms-e2e-'));
  const rules = join(dir, 'queuelens.rules.yml');
  writeFileSync(rules, renderRulesYaml(buildRuleGroups(testSettings)));
  const ports: Record<Mode['sidecar'], number> = { 'per-queue': await freePort(), 'per-prefix': await freePort() };
  for (const [histograms, port] of Object.entries(ports)) {
    const args = ['sidecar', '--redis-url', redis.url, '--port', String(port), '--host', '127.0.0.1', '--prefixes', PREFIX];
    sidecars.push(spawnCli([...args, '--histograms', histograms, '--collect-interval', '0.5', '--discovery-interval', '1', '--log-level', 'warn']));
  }
  for (const port of Object.values(ports)) {
    await waitFor(`sidecar on ${port}`, async () => (await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined))?.ok, 20_000);
  }
  for (const m of MODES) {
    m.prometheus = await startPrometheus({
      jobs: { [settings.exporterJob]: [`127.0.0.1:${ports[m.sidecar]}`] },
      ruleFiles: [rules],
      extraArgs: m.native ? ['--enable-feature=native-histograms'] : [],
    });
  }

  // Jobs arrive every 250 ms and take 300 ms each, one at a time: the backlog grows, and waits pass 1 s.
  queue = new Queue(QUEUE, { connection: { host: '127.0.0.1', port: redis.port, password: redis.password }, prefix: PREFIX });
  let n = 0;
  producing = setInterval(() => void queue.add('job', { n: (n += 1) }).catch(() => undefined), 250);
  worker = new Worker(QUEUE, () => new Promise((resolve) => setTimeout(resolve, JOB_MS)), {
    connection: { host: '127.0.0.1', port: redis.port, password: redis.password, maxRetriesPerRequest: null },
    prefix: PREFIX,
    concurrency: 1,
  });
  worker.on('error', () => undefined);
}, 120_000);

afterAll(async () => {
  clearInterval(producing);
  await worker?.close(true);
  await queue?.close();
  for (const m of MODES) await m.prometheus?.stop();
  for (const s of sidecars) {
    s.proc.kill('SIGTERM');
    await s.exited;
  }
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Ground truth from Redis: the processing time of every completed job, from BullMQ's own timestamps. */
async function processingSeconds(): Promise<number[]> {
  const jobs = await queue.getCompleted(0, -1);
  return jobs.map((j) => (j.finishedOn! - j.processedOn!) / 1000).sort((a, b) => a - b);
}

/**
 * The same from the clock the sidecar reads: the ids of each job's `active` and `completed` stream entries. Under
 * load BullMQ's processedOn/finishedOn (taken by the worker before its script runs) and the entries' Redis time
 * differ by more than a bucket's width, so the panels' bounds cover both.
 */
async function processingSecondsByStream(): Promise<number[]> {
  const entries = (await redis.client().xrange(`${PREFIX}:${QUEUE}:events`, '-', '+')) as Array<[string, string[]]>;
  const activeAt = new Map<string, number>();
  const out: number[] = [];
  for (const [id, fields] of entries) {
    const f = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
    const ms = Number(id.split('-')[0]);
    const jobId = f.get('jobId');
    if (jobId === undefined) continue;
    if (f.get('event') === 'active') activeAt.set(jobId, ms);
    if (f.get('event') === 'completed' && activeAt.has(jobId)) out.push((ms - activeAt.get(jobId)!) / 1000);
  }
  return out.sort((a, b) => a - b);
}

/** The bucket of a mode's histogram that holds `seconds`: a quantile interpolated from it stays inside. */
// (Below: the reader times an attempt by its stream entries, BullMQ by processedOn/finishedOn; they differ by a
// millisecond or two, so the ground truth's bucket is taken with that tolerance.)
function bucketOf(m: Mode, seconds: number): [number, number] {
  if (m.native) {
    const i = nativeBucketIndex(seconds);
    return [nativeBucketUpper(i - 1), nativeBucketUpper(i)];
  }
  const upper = EXPOSED_BUCKETS_SECONDS.find((b) => b >= seconds)!;
  return [EXPOSED_BUCKETS_SECONDS.filter((b) => b < seconds).at(-1) ?? 0, upper];
}

describe.each(MODES)('$name', (m) => {
  test('Prometheus stores what the mode promises: native histograms or classic buckets, with exact counts', async () => {
    const p = m.prometheus!;
    // Counted in the same scrape: every completed job's one attempt is one processing observation.
    const [count, completed] = await waitFor(
      'the processing histogram scraped',
      async () => {
        const c = m.native
          ? await p.query(`histogram_count(bullmq_job_processing_seconds{${own(m)}})`)
          : await p.query(`bullmq_job_processing_seconds_count{${own(m)}}`);
        const done = await p.query(`sum(bullmq_jobs_completed_total{prefix="${PREFIX}"})`);
        return c.length === 1 && done.length === 1 && c[0]!.value >= 10 && [c[0]!.value, done[0]!.value];
      },
      60_000,
      500,
    );
    expect(count).toBe(completed);
    const buckets = await p.query(`count(bullmq_job_processing_seconds_bucket{prefix="${PREFIX}"})`);
    const raw = await p.queryRaw(`bullmq_job_processing_seconds{${own(m)}}`);
    if (m.native) {
      // Scraped as protobuf: the native histogram, and no classic bucket series beside it.
      expect(buckets).toEqual([]);
      expect(raw).toHaveLength(1);
      expect(raw[0]!.histogram?.[1].buckets?.length).toBeGreaterThan(0);
    } else {
      expect(buckets[0]!.value).toBe(EXPOSED_BUCKETS_SECONDS.length + 1);
      expect(raw).toEqual([]);
    }
    // A queue's series as this Prometheus stores them (recorded series left out), as docs/metrics.md states.
    const n = seriesPerQueue();
    const expected = m.sidecar === 'per-prefix' ? n.aggregate.withTraffic : m.native ? n.native.withTraffic : n.classic.withTraffic;
    const series = await p.query(`count({__name__=~"bullmq_.+", prefix="${PREFIX}", queue="${QUEUE}"})`);
    expect(series[0]!.value).toBe(expected);
    if (m.native && m.sidecar === 'per-queue') expect(expected).toBeLessThanOrEqual(25);
    if (!m.native && m.sidecar === 'per-queue') expect(expected).toBeLessThanOrEqual(60);
  });

  test("the dashboards' latency panels return values, the processing time in the jobs' bucket", async () => {
    // Under load a job can take longer than JOB_MS: the bounds of every bucket a job's time fell in.
    const truth = [...(await processingSeconds()), ...(await processingSecondsByStream())].sort((a, b) => a - b);
    const [lo, hi] = [bucketOf(m, truth[0]!)[0], bucketOf(m, truth.at(-1)!)[1]];
    const dashboards = Object.values(buildDashboards(testSettings)) as unknown as Dashboard[];
    let checked = 0;
    for (const d of dashboards) {
      for (const { panel, expr } of panelQueries(d).filter((x) => LATENCY_PANELS.includes(x.panel))) {
        // Grafana's "All", and (per queue) the queue picked; per prefix there is no queue to pick.
        const choices: Array<Record<string, string[]>> = m.sidecar === 'per-queue' ? [{}, { prefix: [PREFIX], queue: [QUEUE] }] : [{}];
        for (const vars of choices) {
          const q = substituteVariables(expr, vars);
          const result = await waitFor(
            `${d.uid} / ${panel}`,
            async () => {
              const r = (await m.prometheus!.query(q)).filter((x) => Number.isFinite(x.value));
              return r.length > 0 && r;
            },
            60_000,
            500,
          );
          expect(result.length, `${d.uid} / ${panel}: ${q}`).toBeGreaterThan(0);
          if (panel === 'Processing time') {
            for (const r of result) {
              expect(r.value, q).toBeGreaterThan(lo);
              expect(r.value, q).toBeLessThanOrEqual(hi);
            }
          }
          checked += 1;
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(m.sidecar === 'per-queue' ? 24 : 12);
  });

  test('the wait-time SLO alerts fire for the queue (per prefix: for the prefix)', async () => {
    for (const name of ['BullMQWaitTimeSLOFastBurn', 'BullMQWaitTimeSLOSlowBurn']) {
      const alert = await waitFor(
        `${name} firing`,
        async () => (await m.prometheus!.alerts()).find((a) => a.labels.alertname === name && a.labels.prefix === PREFIX && a.state === 'firing'),
        90_000,
        500,
      );
      expect(alert.labels.queue).toBe(m.sidecar === 'per-queue' ? QUEUE : undefined);
      expect(Number(alert.value)).toBeGreaterThan(0.2);
    }
  });
});

describe('with the workload stopped and every job counted', () => {
  test("histogram_quantile over each mode's stored histogram lands in the bucket of the jobs' true median processing time", async () => {
    clearInterval(producing);
    await waitFor('the backlog worked off', async () => (await queue.getWaitingCount()) + (await queue.getActiveCount()) === 0, 120_000, 200);
    const truth = await processingSeconds();
    for (const m of MODES) {
      const p = m.prometheus!;
      // The whole history of the histogram: the jobs Redis holds, no more, no fewer.
      const count = m.native ? `histogram_count(bullmq_job_processing_seconds{${own(m)}})` : `bullmq_job_processing_seconds_count{${own(m)}}`;
      await waitFor(`${m.name}: every job in the stored histogram`, async () => (await p.query(count))[0]?.value === truth.length, 60_000, 500);
      const median = truth[Math.ceil(truth.length / 2) - 1]!;
      const [lo, hi] = [bucketOf(m, median - 0.005)[0], bucketOf(m, median + 0.005)[1]];
      const expr = m.native
        ? `histogram_quantile(0.5, bullmq_job_processing_seconds{${own(m)}})`
        : `histogram_quantile(0.5, sum by (le) (bullmq_job_processing_seconds_bucket{${own(m)}}))`;
      const [q] = await p.query(expr);
      expect(q!.value, `${m.name}: median ${median}s`).toBeGreaterThan(lo);
      expect(q!.value, `${m.name}: median ${median}s`).toBeLessThanOrEqual(hi);
      // Native buckets are 19% wide: the estimate is within one of the truth (classic: within 0.1 s .. 1 s).
      if (m.native) expect(Math.abs(q!.value / median - 1)).toBeLessThan(0.2);
    }
  }, 240_000);
});
