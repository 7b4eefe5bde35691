// The JSON shapes of GET /api/queues, shared by the HTTP routes, the status page's data and `queuelens top`.
// Field names are a contract (docs/api/queues.schema.json); add fields, never rename them.
import type { JobState } from '../domain/queue-snapshot.js';

export const API_VERSION = 1;

export type HealthStatus = 'ok' | 'warning' | 'critical';
export type ReasonSeverity = 'critical' | 'warning' | 'info';

export interface HealthReason {
  /** Stable machine-readable code, e.g. `no_workers`. */
  code: string;
  severity: ReasonSeverity;
  /** The Prometheus alert that fires for the same condition (alerts/), or null for informational reasons. */
  alert: string | null;
  /** Link to the alert's runbook on this sidecar, or null. */
  runbook: string | null;
  message: string;
}

export interface QueueHealthView {
  status: HealthStatus;
  /** 0 ok, 1 warning, 2 critical: what "sort by badness" sorts on first. */
  rank: number;
  reasons: HealthReason[];
}

export interface Quantiles {
  /** Observations inside the window. */
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface WindowView {
  /** Seconds the window actually covers (shorter than its name right after start). */
  seconds: number;
  /** Per second. */
  rates: { added: number; completed: number; failed: number; retried: number; stalled: number };
  /** Terminal failures / (completed + failed); null when nothing finished. */
  failureRatio: number | null;
  /** Seconds from eligible to taken by a worker. */
  wait: Quantiles;
  /** Seconds per attempt. */
  processing: Quantiles;
}

export interface QueueHistory {
  /** Epoch seconds, oldest first: at most 64 points over the last 15 minutes (about one per 15 s once full), the last one live. */
  t: number[];
  backlog: number[];
  active: number[];
  delayed: number[];
  oldestWaitingAgeSeconds: number[];
  deadLetterJobs: number[];
  /** Per second between a point and the one before it; null where the event reader has no data. */
  addedPerSecond: Array<number | null>;
  finishedPerSecond: Array<number | null>;
  failedPerSecond: Array<number | null>;
}

export interface QueueView {
  prefix: string;
  name: string;
  /** For a dead-letter queue `<q>-dlq`, the source queue `<q>`; otherwise null. */
  deadLetterOf: string | null;
  /** Job counts by state, keyed like bullmq_queue_jobs{state}. */
  jobs: Record<JobState, number>;
  /** waiting + prioritized. */
  backlog: number;
  paused: boolean;
  rateLimited: boolean;
  oldestWaitingAgeSeconds: number;
  oldestActiveAgeSeconds: number;
  delayedOverdue: number;
  orphanedActive: number;
  /** Connected workers; null where CLIENT LIST is not allowed. */
  workers: number | null;
  /**
   * This queue's dead-letter queue `<queue>-dlq`, or null when there is none. `addedLast15m`: jobs dead-lettered
   * in the last 15 minutes, null when the event reader has no data for the dead-letter queue.
   */
  deadLetter: { queue: string; jobs: number; oldestAgeSeconds: number; addedLast15m: number | null } | null;
  /** Over the last 1 and 15 minutes; null when the event reader has no data for this queue. */
  windows: { '1m': WindowView | null; '15m': WindowView | null };
  health: QueueHealthView;
  /** Only with ?history=1. */
  history?: QueueHistory;
}

export interface QueuesResponse {
  version: number;
  generatedAt: string;
  collection: {
    ok: boolean;
    error: string | null;
    redisUp: boolean;
    /** ISO time of the last successful collection, or null. */
    collectedAt: string | null;
    ageSeconds: number | null;
    intervalSeconds: number;
  };
  /** True when at least one queue has event accounting (rates and latency). */
  accountingAvailable: boolean;
  links: { metrics: string; health: string; bullBoard: string | null };
  /** Sorted by badness: health rank, then oldest waiting age, then backlog. */
  queues: QueueView[];
}
