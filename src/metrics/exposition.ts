// Owns the private registries and the /metrics body. Queue and exporter metrics change only once per
// collection, so their text is rendered once per collection and cached; process metrics are rendered per scrape.
import client from 'prom-client';
import type { MetricDef } from './definitions.js';

const { Registry, Gauge, Counter, Histogram, collectDefaultMetrics } = client;

export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
export const OPENMETRICS_CONTENT_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

function openMetricsRegistry(): client.Registry {
  const r = new Registry();
  r.setContentType(OPENMETRICS_CONTENT_TYPE as unknown as typeof PROMETHEUS_CONTENT_TYPE);
  return r;
}

type AnyMetric = client.Gauge<string> | client.Counter<string> | client.Histogram<string>;

export class Exposition {
  // The same metric objects are registered in a Prometheus-text and an OpenMetrics registry.
  private readonly cached = [new Registry(), openMetricsRegistry()] as const;
  private readonly live = [new Registry(), openMetricsRegistry()] as const;
  private version = 0;
  private cache: { version: number; text: [string?, string?] } = { version: -1, text: [] };

  constructor() {
    for (const r of this.live) {
      collectDefaultMetrics({ register: r });
      // Gauges named *_total: `promtool check metrics` flags them, and they add little to a sidecar.
      for (const name of LINT_FAILING_DEFAULTS) r.removeSingleMetric(name);
    }
  }

  gauge(def: MetricDef): client.Gauge<string> {
    return this.add(new Gauge({ name: def.name, help: def.help, labelNames: [...def.labels], registers: [] }));
  }

  /**
   * One Counter per registry: prom-client renames a counter in place (drops `_total`) while it renders
   * OpenMetrics, which would rename it in the Prometheus-text registry too if the object were shared.
   */
  counter(def: MetricDef): Pick<client.Counter<string>, 'inc'> {
    const [text, om] = this.cached.map((r) => new Counter({ name: def.name, help: def.help, labelNames: [...def.labels], registers: [r] }));
    return {
      inc: ((a?: number | client.LabelValues<string>, b?: number) => {
        text!.inc(a as never, b);
        om!.inc(a as never, b);
      }) as client.Counter<string>['inc'],
    };
  }

  histogram(def: MetricDef): client.Histogram<string> {
    return this.add(new Histogram({ name: def.name, help: def.help, labelNames: [...def.labels], buckets: [...(def.buckets ?? [])], registers: [] }));
  }

  /** Marks the cached text stale; call after changing metric values for a new collection. */
  invalidate(): void {
    this.version += 1;
  }

  async render(openMetrics: boolean): Promise<{ contentType: string; body: string }> {
    const i = openMetrics ? 1 : 0;
    if (this.cache.version !== this.version) this.cache = { version: this.version, text: [] };
    let head = this.cache.text[i];
    if (head === undefined) {
      head = await this.cached[i].metrics();
      if (openMetrics) head = head.replace(/# EOF\n?$/, '');
      this.cache.text[i] = head;
    }
    const tail = await this.live[i].metrics();
    return { contentType: openMetrics ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE, body: head + tail };
  }

  private add<M extends AnyMetric>(metric: M): M {
    for (const r of this.cached) r.registerMetric(metric as unknown as client.Metric);
    return metric;
  }
}
