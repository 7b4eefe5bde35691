// Benchmark of the exposition formats (issue 16): what one queue with traffic costs on /metrics in each mode:
// series as Prometheus stores them, body bytes (plain and gzipped), and the CPU to render the body once per
// collection, in process, at 1,000 and 10,000 queues. Every queue has seen traffic: 50 first takes, completions
// and end-to-end times spread over 5 ms .. 2.7 s (about 15 native buckets per histogram). The series counts come
// from seriesPerQueue(), which test/series-budget.test.ts checks against a real sidecar.
import { QueueAccounting } from '../src/events/accounting.js';
import { JOB_STATES, type CollectionSnapshot } from '../src/domain/queue-snapshot.js';
import type { HistogramMode } from '../src/config/sidecar-config.js';
import { EventMetrics } from '../src/metrics/event-metrics.js';
import { Exposition, type ExpositionFormat } from '../src/metrics/exposition.js';
import { seriesPerQueue } from '../src/metrics/metrics-doc.js';
import { QueueMetrics } from '../src/metrics/queue-metrics.js';
import { loadAverage, machineInfo, table, writeSection } from './lib/report.js';

const SIZES = [1_000, 10_000];
const SECTION = '## Exposition formats (issue 16)';
const LOAD_AT_START = loadAverage();

function accounting(): QueueAccounting {
  const acc = new QueueAccounting();
  for (const c of ['added', 'completed'] as const) for (let k = 0; k < 50; k += 1) acc.count(c, '');
  for (let k = 0; k < 50; k += 1) {
    acc.observe('wait', 'first', '', 5 + k * 37);
    acc.observe('processing', 'completed', '', 20 + k * 11);
    acc.observe('e2e', 'completed', '', 40 + k * 53);
  }
  acc.reader('read', 150);
  return acc;
}

interface Row {
  queues: number;
  mode: string;
  series: number;
  bytes: number;
  gzipped: number;
  renderMs: number;
  longestBlockMs: number;
}

async function measure(n: number, histograms: HistogramMode, format: ExpositionFormat): Promise<Row> {
  const e = new Exposition();
  const queueMetrics = new QueueMetrics(e);
  const events = new EventMetrics(e, histograms);
  const queues = Array.from({ length: n }, (_, i) => ({ queue: { prefix: 'bull', name: `queue-${i}` }, stats: accounting().toStats() }));
  const jobs = Object.fromEntries(JOB_STATES.map((s) => [s, 1])) as CollectionSnapshot['queues'][number]['jobs'];
  const snapshot = {
    seq: 1,
    ok: true,
    redisUp: true,
    durationSeconds: 0.1,
    lastSuccessAt: Date.now(),
    queuesDropped: 0,
    queuesByPrefix: { bull: n },
    queues: queues.map((q) => ({
      ref: q.queue,
      jobs,
      paused: false,
      oldestWaitingAgeSeconds: 0,
      delayedOverdue: 0,
      oldestActiveAgeSeconds: 0,
      orphanedActive: 0,
      workers: 1,
      rateLimited: false,
    })),
  } as unknown as CollectionSnapshot;
  await queueMetrics.update(snapshot);
  const start = performance.now();
  let last = start;
  let longest = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  await events.update({ queues, leader: true });
  const plain = await e.render(format);
  const renderMs = performance.now() - start;
  clearInterval(tick);
  longest = Math.max(longest, performance.now() - last);
  const gzipped = await e.render(format, true);
  const s = seriesPerQueue();
  const series = histograms === 'per-queue' ? (format === 'protobuf' ? s.native.withTraffic : s.classic.withTraffic) : s.aggregate.withTraffic;
  return {
    queues: n,
    mode: `${format}, --histograms ${histograms}`,
    series,
    bytes: plain.body.length / n,
    gzipped: gzipped.body.length / n,
    renderMs,
    longestBlockMs: longest,
  };
}

const rows: Row[] = [];
for (const n of SIZES) {
  for (const [histograms, format] of [
    ['per-queue', 'text'],
    ['per-queue', 'protobuf'],
    ['per-prefix', 'text'],
    ['per-prefix', 'protobuf'],
  ] as const) {
    const r = await measure(n, histograms, format);
    rows.push(r);
    process.stdout.write(`${JSON.stringify(r)}\n`);
  }
}

writeSection(
  new URL('../../docs/benchmarks.md', import.meta.url),
  SECTION,
  `${machineInfo(LOAD_AT_START)}
- bench/exposition.ts (\`npm run bench:exposition\`), in process: the accounting read back, rendered (event
  series and queue gauges) and served once in each format; no Redis. Every queue has seen traffic.

${table(
  ['queues', 'format and mode', 'series per queue', 'body bytes per queue', 'gzipped bytes per queue', 'render once (ms)', 'longest event-loop block (ms)'],
  rows.map((r) => [r.queues, r.mode, r.series, r.bytes.toFixed(0), r.gzipped.toFixed(0), r.renderMs.toFixed(0), r.longestBlockMs.toFixed(0)]),
)}

The protobuf body is built from the rendered text (parsed back, then encoded with protobufjs, in slices) once per
collection, and only when a Prometheus scrapes it: its render time is that CPU. Body bytes per queue are about
half the text's; a native histogram is one series where a classic one is ten.`,
);
