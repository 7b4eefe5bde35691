// Renders a collection snapshot into the queue gauges and the exporter's self-metrics. Values are replaced
// wholesale each collection, so a vanished queue's series vanish with it and a failed collection shows no
// stale queue values.
import type { CollectionSnapshot } from '../collector/queue-snapshot.js';
import { JOB_STATES, parkedJobs } from '../collector/queue-snapshot.js';
import { METRICS } from './definitions.js';
import type { Exposition } from './exposition.js';

export class QueueMetrics {
  private readonly jobs;
  private readonly paused;
  private readonly oldestWaiting;
  private readonly overdue;
  private readonly oldestActive;
  private readonly orphaned;
  private readonly workers;
  private readonly rateLimited;
  private readonly dlqJobs;
  private readonly dlqOldest;
  private readonly up;
  private readonly redisUp;
  private readonly duration;
  private readonly lastCollect;
  private readonly errors;
  private readonly queues;
  private readonly dropped;
  private lastSeq = 0;
  private staleSeq = -1;

  constructor(private readonly exposition: Exposition) {
    const e = exposition;
    this.jobs = e.gauge(METRICS.queueJobs);
    this.paused = e.gauge(METRICS.queuePaused);
    this.oldestWaiting = e.gauge(METRICS.queueOldestWaitingAge);
    this.overdue = e.gauge(METRICS.queueDelayedOverdue);
    this.oldestActive = e.gauge(METRICS.queueOldestActiveAge);
    this.orphaned = e.gauge(METRICS.queueOrphanedActive);
    this.workers = e.gauge(METRICS.queueWorkers);
    this.rateLimited = e.gauge(METRICS.queueRateLimited);
    this.dlqJobs = e.gauge(METRICS.dlqJobs);
    this.dlqOldest = e.gauge(METRICS.dlqOldestAge);
    this.up = e.gauge(METRICS.exporterUp);
    this.redisUp = e.gauge(METRICS.exporterRedisUp);
    this.duration = e.gauge(METRICS.exporterCollectDuration);
    this.lastCollect = e.gauge(METRICS.exporterLastCollect);
    this.errors = e.counter(METRICS.exporterCollectErrors);
    this.queues = e.gauge(METRICS.exporterQueues);
    this.dropped = e.gauge(METRICS.exporterQueuesDropped);
    this.up.set(0);
    this.redisUp.set(0);
    this.errors.inc(0);
  }

  /**
   * A collection is hanging (Redis stalled without closing the connection): stop exporting the last values as if
   * they were current. The next finished collection replaces this.
   */
  markStale(): void {
    if (this.staleSeq === this.lastSeq) return;
    this.staleSeq = this.lastSeq;
    this.resetQueueGauges();
    this.up.set(0);
    this.exposition.invalidate();
  }

  private resetQueueGauges(): void {
    for (const g of [this.jobs, this.paused, this.oldestWaiting, this.overdue, this.oldestActive, this.orphaned, this.workers, this.rateLimited, this.dlqJobs, this.dlqOldest, this.queues]) {
      g.reset();
    }
  }

  update(s: CollectionSnapshot): void {
    if (s.seq === this.lastSeq) return;
    this.lastSeq = s.seq;
    this.resetQueueGauges();
    this.up.set(s.ok ? 1 : 0);
    this.redisUp.set(s.redisUp ? 1 : 0);
    this.duration.set(s.durationSeconds);
    if (s.lastSuccessAt > 0) this.lastCollect.set(s.lastSuccessAt / 1000);
    if (!s.ok) this.errors.inc();
    this.dropped.set(s.queuesDropped);
    for (const [prefix, n] of Object.entries(s.queuesByPrefix)) this.queues.set({ prefix }, n);

    for (const q of s.queues) {
      const l = { prefix: q.ref.prefix, queue: q.ref.name };
      for (const state of JOB_STATES) this.jobs.set({ ...l, state }, q.jobs[state]);
      this.paused.set(l, q.paused ? 1 : 0);
      this.oldestWaiting.set(l, q.oldestWaitingAgeSeconds);
      this.overdue.set(l, q.delayedOverdue);
      this.oldestActive.set(l, q.oldestActiveAgeSeconds);
      this.orphaned.set(l, q.orphanedActive);
      if (q.workers !== undefined) this.workers.set(l, q.workers);
      this.rateLimited.set(l, q.rateLimited ? 1 : 0);
      if (q.dlqOf !== undefined) {
        const d = { prefix: q.ref.prefix, queue: q.dlqOf };
        this.dlqJobs.set(d, parkedJobs(q));
        this.dlqOldest.set(d, q.oldestWaitingAgeSeconds);
      }
    }
    this.exposition.invalidate();
  }
}
