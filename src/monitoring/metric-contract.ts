// The metric names and labels that issues 2-4 promise, as dashboards and alerts may use them. A panel or rule
// that names anything else is a typo; test/dashboards.test.ts and test/alerts.test.ts hold them to this list.
// Once src/metrics/definitions.ts carries every exported metric, this list should be checked against it.

export type ContractType = 'gauge' | 'counter' | 'histogram';

export interface ContractMetric {
  type: ContractType;
  /** Labels the metric carries besides the target labels Prometheus adds (job, instance). */
  labels: readonly string[];
}

const Q = ['prefix', 'queue'] as const;
// job_name is optional (--job-name-label); rules must tolerate its presence and its absence.
const QJ = [...Q, 'job_name'] as const;

export const METRIC_CONTRACT = {
  // issue 2: queue state, read from Redis at each collection
  bullmq_queue_jobs: { type: 'gauge', labels: [...Q, 'state'] },
  bullmq_queue_paused: { type: 'gauge', labels: Q },
  bullmq_queue_oldest_waiting_age_seconds: { type: 'gauge', labels: Q },
  bullmq_queue_delayed_overdue_jobs: { type: 'gauge', labels: Q },
  bullmq_queue_oldest_active_age_seconds: { type: 'gauge', labels: Q },
  bullmq_queue_orphaned_active_jobs: { type: 'gauge', labels: Q },
  bullmq_queue_workers: { type: 'gauge', labels: Q },
  bullmq_queue_rate_limited: { type: 'gauge', labels: Q },
  // issue 2: the sidecar's own health
  bullmq_exporter_up: { type: 'gauge', labels: [] },
  bullmq_exporter_redis_up: { type: 'gauge', labels: [] },
  bullmq_exporter_collect_duration_seconds: { type: 'gauge', labels: [] },
  bullmq_exporter_last_collect_timestamp_seconds: { type: 'gauge', labels: [] },
  bullmq_exporter_collect_errors_total: { type: 'counter', labels: [] },
  bullmq_exporter_queues: { type: 'gauge', labels: ['prefix'] },
  bullmq_exporter_queues_dropped: { type: 'gauge', labels: [] },
  // issue 3: event accounting
  bullmq_jobs_added_total: { type: 'counter', labels: QJ },
  bullmq_jobs_completed_total: { type: 'counter', labels: QJ },
  bullmq_jobs_failed_total: { type: 'counter', labels: QJ },
  bullmq_jobs_retried_total: { type: 'counter', labels: QJ },
  bullmq_jobs_stalled_total: { type: 'counter', labels: QJ },
  bullmq_jobs_deduplicated_total: { type: 'counter', labels: QJ },
  bullmq_job_wait_seconds: { type: 'histogram', labels: [...QJ, 'attempt'] },
  bullmq_job_processing_seconds: { type: 'histogram', labels: [...QJ, 'outcome'] },
  bullmq_job_e2e_seconds: { type: 'histogram', labels: [...QJ, 'outcome'] },
  bullmq_exporter_events_lag_seconds: { type: 'gauge', labels: Q },
  bullmq_exporter_events_lost_total: { type: 'counter', labels: Q },
  bullmq_exporter_events_unmatched_total: { type: 'counter', labels: Q },
  bullmq_exporter_events_read_total: { type: 'counter', labels: Q },
  bullmq_exporter_events_evicted_total: { type: 'counter', labels: Q },
  bullmq_exporter_leader: { type: 'gauge', labels: [] },
  // issue 4: dead-letter queues; queue is the source queue
  bullmq_dlq_jobs: { type: 'gauge', labels: Q },
  bullmq_dlq_oldest_age_seconds: { type: 'gauge', labels: Q },
  bullmq_dlq_added_total: { type: 'counter', labels: Q },
  // written by Prometheus itself and by prom-client's default process metrics
  up: { type: 'gauge', labels: [] },
  process_resident_memory_bytes: { type: 'gauge', labels: [] },
  process_cpu_seconds_total: { type: 'counter', labels: [] },
} as const satisfies Record<string, ContractMetric>;

/** Labels every scraped series has. */
export const TARGET_LABELS = ['job', 'instance'] as const;

export type ContractName = keyof typeof METRIC_CONTRACT;

/** Every series name a query may select, histograms expanded into _bucket/_count/_sum, with its type and labels. */
export function contractSeries(): Map<string, { type: ContractType | 'histogram_bucket' | 'histogram_total'; labels: readonly string[] }> {
  const out = new Map<string, { type: ContractType | 'histogram_bucket' | 'histogram_total'; labels: readonly string[] }>();
  for (const [name, m] of Object.entries(METRIC_CONTRACT) as Array<[string, ContractMetric]>) {
    const labels = [...m.labels, ...TARGET_LABELS];
    if (m.type === 'histogram') {
      out.set(`${name}_bucket`, { type: 'histogram_bucket', labels: [...labels, 'le'] });
      out.set(`${name}_count`, { type: 'histogram_total', labels });
      out.set(`${name}_sum`, { type: 'histogram_total', labels });
    } else {
      out.set(name, { type: m.type, labels });
    }
  }
  return out;
}
