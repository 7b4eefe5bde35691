// Owns the private registries and the /metrics body. Queue and exporter metrics change only once per
// collection, so their text is rendered once per collection (the queue gauges arrive already rendered, see
// queue-metrics.ts); process metrics are re-read when older than `liveMaxAgeMs`. The whole body is kept as
// bytes (and gzipped once, on demand), and concurrent scrapes share one render: with 1,000 queues the body
// is ~1 MB, and rendering or compressing it per scrape would make 50 concurrent scrapers queue behind each other.
import { promisify } from 'node:util';
import { gzip as gzipCb, constants as zlib } from 'node:zlib';
import client from 'prom-client';
import type { MetricDef } from './definitions.js';
import { Slicer } from '../util/slicer.js';
import { encodeFamilies, encodeFamiliesSliced, parseText, parseTextSliced, PROTOBUF_CONTENT_TYPE, type NativeBuckets } from './exposition-protobuf.js';

const { Registry, Gauge, Counter, Histogram, collectDefaultMetrics } = client;
const gzip = promisify(gzipCb);
/** In the libuv thread pool, so the event loop serves other scrapes meanwhile. */
const compress = (body: Promise<Buffer>) => body.then((b) => gzip(b, { level: zlib.Z_BEST_SPEED }));

export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
export const OPENMETRICS_CONTENT_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

/** What a scrape negotiated: the Prometheus text format, OpenMetrics, or protobuf (native histograms). */
export type ExpositionFormat = 'text' | 'openmetrics' | 'protobuf';
const FORMATS: readonly ExpositionFormat[] = ['text', 'openmetrics', 'protobuf'];
const CONTENT_TYPES: Record<ExpositionFormat, string> = {
  text: PROMETHEUS_CONTENT_TYPE,
  openmetrics: OPENMETRICS_CONTENT_TYPE,
  protobuf: PROTOBUF_CONTENT_TYPE,
};

const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

function openMetricsRegistry(): client.Registry {
  const r = new Registry();
  r.setContentType(OPENMETRICS_CONTENT_TYPE as unknown as typeof PROMETHEUS_CONTENT_TYPE);
  return r;
}

type AnyMetric = client.Gauge<string> | client.Counter<string> | client.Histogram<string>;

export interface RenderedMetrics {
  contentType: string;
  body: Buffer;
  /** Set when the body is gzip-compressed. */
  contentEncoding?: 'gzip';
}

interface Rendered {
  /** Collection version the text was rendered for. */
  version: number;
  at: number;
  body: Promise<Buffer>;
  gzipped?: Promise<Buffer>;
  /** Its replacement with fresh process metrics, being rendered while this one is still served. */
  next?: Rendered;
}

export class Exposition {
  // The same metric objects are registered in a Prometheus-text and an OpenMetrics registry.
  private readonly cached = [new Registry(), openMetricsRegistry()] as const;
  private readonly live = [new Registry(), openMetricsRegistry()] as const;
  private version = 0;
  private collectionBytes = Buffer.alloc(0);
  private eventBytes: [Buffer, Buffer] = [Buffer.alloc(0), Buffer.alloc(0)];
  private eventNative: ReadonlyMap<string, NativeBuckets> = new Map();
  /** The protobuf of the collection's and events' families, for the texts it was encoded from. */
  private protoMiddle?: { collection: Buffer; events: Buffer; bytes: Buffer };
  private readonly rendered: [Rendered?, Rendered?, Rendered?] = [];

  /** @param liveMaxAgeMs how stale process metrics may be, so a burst of scrapes shares one render. */
  constructor(private readonly liveMaxAgeMs = 1000) {
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

  /** Marks the body stale after a gauge changed between collections. */
  invalidate(): void {
    this.version += 1;
  }

  /**
   * Sets the pre-rendered text of the event metrics (event-metrics.ts), one per format: counters are named
   * differently in OpenMetrics. No blank lines, every line ending in a newline. `native`: the native buckets of
   * the latency histograms in that text, for the protobuf exposition. Marks the body stale.
   */
  setEventText(prometheus: string, openMetrics: string, native: ReadonlyMap<string, NativeBuckets> = new Map()): void {
    this.eventBytes = [Buffer.from(prometheus), Buffer.from(openMetrics)];
    this.eventNative = native;
    this.version += 1;
  }

  /**
   * Sets the pre-rendered text of the collection's gauges (valid in both formats: gauges only, every line
   * ending in a newline, no blank lines) and marks the body stale. Call it last when a collection changes
   * metric values, so the next render sees them all.
   */
  setCollectionText(text: string): void {
    // Encoded once here, not at every render: stale process metrics re-render the body between collections.
    this.collectionBytes = Buffer.from(text);
    this.version += 1;
  }

  /** @param format a negotiated format; true/false for OpenMetrics/the Prometheus text format. */
  async render(format: ExpositionFormat | boolean, acceptGzip = false): Promise<RenderedMetrics> {
    const f: ExpositionFormat = format === true ? 'openmetrics' : format === false ? 'text' : format;
    const i = FORMATS.indexOf(f) as 0 | 1 | 2;
    let r = this.rendered[i];
    const now = Date.now();
    if (r === undefined || r.version !== this.version) {
      // New collection values: every scrape from now on waits for them.
      r = this.startRender(i, now);
      this.rendered[i] = r;
    } else if (now - r.at >= this.liveMaxAgeMs && r.next === undefined) {
      // Only the process metrics are stale: keep serving this body while a fresh one is rendered and
      // compressed (off the event loop), so no scrape waits for that; the next scrapes get the fresh one.
      const current = r;
      const next = this.startRender(i, now, current.gzipped !== undefined);
      current.next = next;
      Promise.all([next.body, next.gzipped]).then(
        () => {
          if (this.rendered[i] === current) this.rendered[i] = next;
        },
        () => (current.next = undefined),
      );
    }
    const contentType = CONTENT_TYPES[f];
    if (!acceptGzip) return { contentType, body: await r.body };
    r.gzipped ??= compress(r.body);
    return { contentType, body: await r.gzipped, contentEncoding: 'gzip' };
  }

  private startRender(i: 0 | 1 | 2, now: number, gzipped = false): Rendered {
    const r: Rendered = { version: this.version, at: now, body: i === 2 ? this.renderProtobuf() : this.renderText(i) };
    if (gzipped) r.gzipped = compress(r.body);
    // A failed render must not be served forever.
    r.body.catch(() => {
      if (this.rendered[i] === r) this.rendered[i] = undefined;
    });
    r.gzipped?.catch(() => undefined);
    return r;
  }

  private async renderText(i: 0 | 1): Promise<Buffer> {
    const collection = this.collectionBytes;
    const events = this.eventBytes[i];
    let head = await this.cached[i].metrics();
    if (i === 1) head = head.replace(/# EOF\n?$/, '');
    const tail = await this.live[i].metrics();
    return Buffer.concat([Buffer.from(head), collection, events, Buffer.from(tail)]);
  }

  /**
   * The protobuf exposition: the same families as the text (parsed back from it, see exposition-protobuf.ts),
   * the latency histograms with native buckets. The collection's and events' part is encoded once per change of
   * their text, not per render: process metrics re-render the body every liveMaxAgeMs.
   */
  private async renderProtobuf(): Promise<Buffer> {
    const collection = this.collectionBytes;
    const events = this.eventBytes[0];
    const native = this.eventNative;
    const [head, tail] = await Promise.all([this.cached[0].metrics(), this.live[0].metrics()]);
    let middle = this.protoMiddle;
    if (middle?.collection !== collection || middle.events !== events) {
      const slicer = new Slicer();
      const families = [...(await parseTextSliced(collection.toString(), new Map(), slicer)), ...(await parseTextSliced(events.toString(), native, slicer))];
      middle = { collection, events, bytes: await encodeFamiliesSliced(families, slicer) };
      this.protoMiddle = middle;
    }
    return Buffer.concat([encodeFamilies(parseText(head)), middle.bytes, encodeFamilies(parseText(tail))]);
  }

  private add<M extends AnyMetric>(metric: M): M {
    for (const r of this.cached) r.registerMetric(metric as unknown as client.Metric);
    return metric;
  }
}
