// Renders the persisted event accounting (read back from Redis at collection time, the same on every
// replica) into the job counters, latency histograms and reader-health metrics. Values are replaced
// wholesale each collection; when the read-back failed the series are absent rather than stale.
import { dlqSource } from '../collector/queue-snapshot.js';
import type { EventCounter, EventHistogram } from '../events/accounting.js';
import type { QueueEventAccounting } from '../events/read-back.js';
import { METRICS } from './definitions.js';
import type { Exposition } from './exposition.js';
import type { SnapshotMetric } from './snapshot-metric.js';

export interface EventsView {
  /** Undefined when the read-back failed. */
  queues: readonly QueueEventAccounting[] | undefined;
  leader: boolean;
}

export class EventMetrics {
  private readonly counters: Record<EventCounter, SnapshotMetric>;
  private readonly histograms: Record<EventHistogram, SnapshotMetric>;
  private readonly dlqAdded: SnapshotMetric;
  private readonly read: SnapshotMetric;
  private readonly lost: SnapshotMetric;
  private readonly unmatched: SnapshotMetric;
  private readonly evicted: SnapshotMetric;
  private readonly lag;
  private readonly leader;

  constructor(private readonly exposition: Exposition) {
    const e = exposition;
    this.counters = {
      added: e.snapshot(METRICS.jobsAdded),
      completed: e.snapshot(METRICS.jobsCompleted),
      failed: e.snapshot(METRICS.jobsFailed),
      retried: e.snapshot(METRICS.jobsRetried),
      stalled: e.snapshot(METRICS.jobsStalled),
      deduplicated: e.snapshot(METRICS.jobsDeduplicated),
    };
    this.histograms = { wait: e.snapshot(METRICS.jobWait), processing: e.snapshot(METRICS.jobProcessing), e2e: e.snapshot(METRICS.jobE2e) };
    this.dlqAdded = e.snapshot(METRICS.dlqAdded);
    this.read = e.snapshot(METRICS.exporterEventsRead);
    this.lost = e.snapshot(METRICS.exporterEventsLost);
    this.unmatched = e.snapshot(METRICS.exporterEventsUnmatched);
    this.evicted = e.snapshot(METRICS.exporterEventsEvicted);
    this.lag = e.gauge(METRICS.exporterEventsLag);
    this.leader = e.gauge(METRICS.exporterLeader);
    this.leader.set(0);
  }

  update(view: EventsView): void {
    const all = [...Object.values(this.counters), ...Object.values(this.histograms), this.dlqAdded, this.read, this.lost, this.unmatched, this.evicted];
    for (const m of all) m.reset();
    this.lag.reset();
    this.leader.set(view.leader ? 1 : 0);

    for (const { queue, stats } of view.queues ?? []) {
      const q = { prefix: queue.prefix, queue: queue.name };
      const withName = (jobName: string) => (jobName === '' ? q : { ...q, job_name: jobName });
      const source = dlqSource(queue.name);
      for (const c of stats.counters) {
        this.counters[c.counter].set(withName(c.jobName), c.value);
        if (c.counter === 'added' && source !== undefined) this.dlqAdded.set({ prefix: queue.prefix, queue: source }, c.value);
      }
      for (const h of stats.histograms) {
        const label = h.histogram === 'wait' ? 'attempt' : 'outcome';
        this.histograms[h.histogram].setHistogram({ ...withName(h.jobName), [label]: h.label }, h.buckets, h.count, h.sumSeconds);
      }
      this.read.set(q, stats.reader.read);
      this.lost.set(q, stats.reader.lost);
      this.unmatched.set(q, stats.reader.unmatched);
      this.evicted.set(q, stats.reader.evicted);
      this.lag.set(q, stats.reader.lagSeconds);
    }
    this.exposition.invalidate();
  }
}
