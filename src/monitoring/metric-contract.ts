// The metric names and labels dashboards and alerts may use: every metric the sidecar defines
// (src/metrics/definitions.ts) plus the few that Prometheus and prom-client write. A panel or rule that names
// anything else is a typo; test/dashboards.test.ts and test/alerts.test.ts hold them to this list.
import { METRICS, type MetricType } from '../metrics/definitions.js';

export type ContractType = MetricType;

export interface ContractMetric {
  type: ContractType;
  /** Labels the metric carries besides the target labels Prometheus adds (job, instance). */
  labels: readonly string[];
}

/** Written by Prometheus itself (`up`) and by prom-client's default process metrics. */
export const EXTERNAL_METRICS: Readonly<Record<string, ContractMetric>> = {
  up: { type: 'gauge', labels: [] },
  process_resident_memory_bytes: { type: 'gauge', labels: [] },
  process_cpu_seconds_total: { type: 'counter', labels: [] },
};

// job_name (on event metrics) is optional (--job-name-label); rules must tolerate its presence and its absence.
export const METRIC_CONTRACT: Readonly<Record<string, ContractMetric>> = {
  ...Object.fromEntries(Object.values(METRICS).map((d) => [d.name, { type: d.type, labels: d.labels }])),
  ...EXTERNAL_METRICS,
};

/** Labels every scraped series has. */
export const TARGET_LABELS = ['job', 'instance'] as const;

/** Every series name a query may select, histograms expanded into _bucket/_count/_sum and the native one, with its type and labels. */
export function contractSeries(): Map<string, { type: ContractType | 'histogram_bucket' | 'histogram_total' | 'histogram_native'; labels: readonly string[] }> {
  const out = new Map<string, { type: ContractType | 'histogram_bucket' | 'histogram_total' | 'histogram_native'; labels: readonly string[] }>();
  for (const [name, m] of Object.entries(METRIC_CONTRACT)) {
    const labels = [...m.labels, ...TARGET_LABELS];
    if (m.type === 'histogram') {
      out.set(`${name}_bucket`, { type: 'histogram_bucket', labels: [...labels, 'le'] });
      out.set(`${name}_count`, { type: 'histogram_total', labels });
      out.set(`${name}_sum`, { type: 'histogram_total', labels });
      // The native histogram, when Prometheus negotiates the protobuf exposition (docs/metrics.md).
      out.set(name, { type: 'histogram_native', labels });
    } else {
      out.set(name, { type: m.type, labels });
    }
  }
  return out;
}
