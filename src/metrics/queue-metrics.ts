// Renders a collection snapshot into the queue gauges and the exporter's self-metrics. Queue gauges are
// written as exposition text straight from the snapshot, once per collection: with 1,000 queues that is
// 15,000 series, and setting them one by one in prom-client (a label-set hash per series, rebuilt every
// collection) then rendering them cost ~45 ms of event loop and most of the heap churn (bench/collector.ts).
// Because the text is rebuilt from each snapshot, a vanished queue's series vanish with it and a failed
// collection shows no stale queue values. The few self-metrics stay in prom-client.
import { createRequire } from 'node:module';
import type { CollectionSnapshot, QueueState } from '../domain/queue-snapshot.js';
import { JOB_STATES, SKIP_REASONS } from '../domain/queue-snapshot.js';
import { Slicer } from '../util/slicer.js';
import { METRICS, type MetricDef } from './definitions.js';
import type { Exposition } from './exposition.js';
import { header, labelAfter, num, renderLabels, sameLabels } from './exposition-text.js';

/** One queue gauge: its definition and how to read it from a queue (undefined = no series for that queue). */
interface QueueGauge {
  def: MetricDef;
  value: (q: QueueState) => number | undefined;
}

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };
const parkedInDlq = (q: QueueState) => JOB_STATES.reduce((sum, st) => (st === 'completed' ? sum : sum + q.jobs[st]), 0);

const QUEUE_GAUGES: QueueGauge[] = [
  // Only while paused (orphaned active jobs, rate limited: only while non-zero): see their help (the series budget,
  // docs/metrics.md).
  { def: METRICS.queuePaused, value: (q) => (q.paused ? 1 : undefined) },
  { def: METRICS.queueOldestWaitingAge, value: (q) => q.oldestWaitingAgeSeconds },
  { def: METRICS.queueDelayedOverdue, value: (q) => q.delayedOverdue },
  { def: METRICS.queueOldestActiveAge, value: (q) => q.oldestActiveAgeSeconds },
  { def: METRICS.queueOrphanedActive, value: (q) => q.orphanedActive || undefined },
  { def: METRICS.queueWorkers, value: (q) => q.workers },
  { def: METRICS.queueRateLimited, value: (q) => (q.rateLimited ? 1 : undefined) },
];

/** Dead-letter gauges are labelled with the source queue's name. */
const DLQ_GAUGES: QueueGauge[] = [
  { def: METRICS.dlqJobs, value: parkedInDlq },
  { def: METRICS.dlqOldestAge, value: (q) => q.oldestWaitingAgeSeconds },
];

// Label names come from the definitions: a queue's label set (rendered once per queue and shared by every gauge
// that has exactly those labels), and the one label bullmq_queue_jobs adds to it.
const QUEUE_LABELS = METRICS.queuePaused.labels;
sameLabels(
  [...QUEUE_GAUGES, ...DLQ_GAUGES].map((g) => g.def),
  QUEUE_LABELS,
);
const STATE_LABEL = labelAfter(METRICS.queueJobs, QUEUE_LABELS);

export class QueueMetrics {
  private readonly up;
  private readonly redisUp;
  private readonly duration;
  private readonly lastCollect;
  private readonly errors;
  private readonly queues;
  private readonly dropped;
  private readonly cycle;
  private readonly interval;
  private lastSeq = 0;
  private staleSeq = -1;

  constructor(private readonly exposition: Exposition) {
    const e = exposition;
    this.up = e.gauge(METRICS.exporterUp);
    this.redisUp = e.gauge(METRICS.exporterRedisUp);
    this.duration = e.gauge(METRICS.exporterCollectDuration);
    this.lastCollect = e.gauge(METRICS.exporterLastCollect);
    this.errors = e.counter(METRICS.exporterCollectErrors);
    this.queues = e.gauge(METRICS.exporterQueues);
    this.dropped = e.gauge(METRICS.exporterQueuesDropped);
    this.cycle = e.gauge(METRICS.exporterCycleDuration);
    this.interval = e.gauge(METRICS.exporterCollectInterval);
    e.gauge(METRICS.exporterBuildInfo).set({ version, nodejs_version: process.version }, 1);
    this.up.set(0);
    this.redisUp.set(0);
    this.errors.inc(0);
    e.setCollectionText(EMPTY_TEXT);
  }

  /** After each whole cycle: how long it took and the interval now in force (sidecar/stretch.ts). */
  setCycle(cycleSeconds: number, intervalSeconds: number): void {
    this.cycle.set(cycleSeconds);
    this.interval.set(intervalSeconds);
    this.exposition.invalidate();
  }

  /**
   * A collection is hanging (Redis stalled without closing the connection): stop exporting the last values as if
   * they were current. The next finished collection replaces this.
   */
  markStale(): boolean {
    if (this.staleSeq === this.lastSeq) return false;
    this.staleSeq = this.lastSeq;
    this.queues.reset();
    this.up.set(0);
    this.exposition.setCollectionText(EMPTY_TEXT);
    return true;
  }

  /** Renders in slices (see Slicer); the new values appear together once the whole text is ready. */
  async update(s: CollectionSnapshot): Promise<void> {
    if (s.seq === this.lastSeq) return;
    this.lastSeq = s.seq;
    const text = await renderQueueGauges(s.queues, new Slicer());
    // A newer collection, or markStale(), got there while this one rendered.
    if (this.lastSeq !== s.seq || this.staleSeq === s.seq) return;
    this.queues.reset();
    this.up.set(s.ok ? 1 : 0);
    this.redisUp.set(s.redisUp ? 1 : 0);
    this.duration.set(s.durationSeconds);
    if (s.lastSuccessAt > 0) this.lastCollect.set(s.lastSuccessAt / 1000);
    if (!s.ok) this.errors.inc();
    this.dropped.set({ reason: 'max_queues' }, s.queuesDropped);
    for (const reason of SKIP_REASONS) this.dropped.set({ reason }, s.queuesSkipped?.[reason] ?? 0);
    for (const [prefix, n] of Object.entries(s.queuesByPrefix)) this.queues.set({ prefix }, n);
    this.exposition.setCollectionText(text);
  }
}

/** Exposition text of every queue gauge; identical in the Prometheus text format and OpenMetrics (gauges only, no blank lines). */
async function renderQueueGauges(queues: readonly QueueState[], slicer: Slicer): Promise<string> {
  const labels = queues.map((q) => renderLabels(QUEUE_LABELS, [q.ref.prefix, q.ref.name]));
  const dlqs = queues.flatMap((q) => (q.dlqOf === undefined ? [] : [{ q, l: renderLabels(QUEUE_LABELS, [q.ref.prefix, q.dlqOf]) }]));
  const parts: string[] = [];

  parts.push(header(METRICS.queueJobs));
  for (const [i, q] of queues.entries()) {
    for (const st of JOB_STATES) parts.push(`${METRICS.queueJobs.name}{${labels[i]!},${STATE_LABEL}="${st}"} ${num(q.jobs[st])}\n`);
    if (slicer.due()) await slicer.yield();
  }
  for (const g of QUEUE_GAUGES) {
    parts.push(header(g.def));
    for (const [i, q] of queues.entries()) {
      if (slicer.due()) await slicer.yield();
      const v = g.value(q);
      if (v !== undefined) parts.push(`${g.def.name}{${labels[i]!}} ${num(v)}\n`);
    }
  }
  for (const g of DLQ_GAUGES) {
    parts.push(header(g.def));
    for (const { q, l } of dlqs) parts.push(`${g.def.name}{${l}} ${num(g.value(q)!)}\n`);
  }
  return parts.join('');
}

/** The text of a collection without queues: every family's header and no series. */
/** Series one queue's gauges cost (docs/metrics.md, cardinality), and what its dead-letter queue adds to it. */
export const QUEUE_GAUGE_SERIES = JOB_STATES.length + QUEUE_GAUGES.filter((g) => !g.def.sparse).length;
export const DLQ_GAUGE_SERIES = DLQ_GAUGES.length;

const EMPTY_TEXT = header(METRICS.queueJobs) + [...QUEUE_GAUGES, ...DLQ_GAUGES].map((g) => header(g.def)).join('');
