// Counters and histograms whose values are set wholesale at collection time from accounting persisted in
// Redis (prom-client's Counter and Histogram only accumulate what this process saw). One shared value set,
// one view per registry: prom-client renames a counter in place when it renders OpenMetrics, so a view
// registered in both registries would lose `_total` in the Prometheus text format.
import type { MetricDef } from './definitions.js';

type Labels = Record<string, string>;

interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}

/** What prom-client's Registry needs from a metric. */
export interface RegistryView {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: 'counter' | 'histogram'; values: Sample[]; aggregator: 'sum' }>;
  reset(): void;
}

export class SnapshotMetric {
  private counts = new Map<string, { labels: Labels; value: number }>();
  private histograms: Array<{ labels: Labels; buckets: readonly number[]; count: number; sum: number }> = [];

  constructor(readonly def: MetricDef & { type: 'counter' | 'histogram' }) {}

  reset(): void {
    this.counts = new Map();
    this.histograms = [];
  }

  /** A counter's value; adds to an existing series with the same labels (several sources fold into one). */
  set(labels: Labels, value: number): void {
    const key = JSON.stringify(labels);
    const hit = this.counts.get(key);
    if (hit) hit.value += value;
    else this.counts.set(key, { labels, value });
  }

  /** A histogram series: cumulative counts per bucket bound of the definition, then count and sum. */
  setHistogram(labels: Labels, buckets: readonly number[], count: number, sum: number): void {
    this.histograms.push({ labels, buckets, count, sum });
  }

  view(): RegistryView {
    const self = this;
    const { help, type } = this.def;
    return {
      name: this.def.name,
      help,
      type,
      aggregator: 'sum',
      reset: () => undefined,
      async get() {
        return { name: this.name, help, type, aggregator: 'sum' as const, values: self.samples(this.name) };
      },
    };
  }

  private samples(name: string): Sample[] {
    if (this.def.type === 'counter') return [...this.counts.values()].map((c) => ({ labels: c.labels, value: c.value }));
    const bounds = this.def.buckets ?? [];
    const out: Sample[] = [];
    for (const h of this.histograms) {
      bounds.forEach((le, i) => out.push({ labels: { ...h.labels, le: String(le) }, value: h.buckets[i] ?? h.count, metricName: `${name}_bucket` }));
      out.push({ labels: { ...h.labels, le: '+Inf' }, value: h.count, metricName: `${name}_bucket` });
      out.push({ labels: h.labels, value: h.sum, metricName: `${name}_sum` });
      out.push({ labels: h.labels, value: h.count, metricName: `${name}_count` });
    }
    return out;
  }
}
