// Owns the private registries and the /metrics body. The queue gauges and event series arrive as fragments
// (exposition-fragments.ts: text and protobuf per queue, re-rendered only for queues that changed); the exporter's
// self-metrics and the process metrics come from prom-client, the latter re-read when older than `liveMaxAgeMs`.
// Each format's body is written whole, in slices, and kept as bytes (gzipped once, on demand); concurrent scrapes
// share it, and while the next one is written they are served the previous complete one: with 10,000 queues a
// body is tens of MB, and writing or compressing it per scrape would make 50 scrapers queue behind each other.
import { promisify } from 'node:util';
import { gzip as gzipCb, constants as zlib } from 'node:zlib';
import client from 'prom-client';
import type { MetricDef } from './definitions.js';
import { Slicer } from '../util/slicer.js';
import { PROTOBUF_CONTENT_TYPE } from './exposition-protobuf.js';
import { assemble, encodeRegistry, FragmentSet } from './exposition-fragments.js';

const { Registry, Gauge, Counter, Histogram, collectDefaultMetrics } = client;
const gzip = promisify(gzipCb);
/** In the libuv thread pool, so the event loop serves other scrapes meanwhile. */
const compress = (body: Buffer) => gzip(body, { level: zlib.Z_BEST_SPEED });

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

/** A complete body of one format. */
interface Built {
  /** The version of the values it was written from (every change of a value bumps the version). */
  version: number;
  at: number;
  body: Buffer;
  gzipped?: Promise<Buffer>;
}

/** The parts of the body rendered from the collection (queue gauges) and the event accounting. */
export type FragmentPart = 'collection' | 'events';

export class Exposition {
  // The same metric objects are registered in a Prometheus-text and an OpenMetrics registry.
  private readonly cached = [new Registry(), openMetricsRegistry()] as const;
  private readonly live = [new Registry(), openMetricsRegistry()] as const;
  private version = 0;
  /** No scrape is answered with a body older than this version (a leader flag that changed, a published part). */
  private required = 0;
  private readonly parts: Record<FragmentPart, FragmentSet> = { collection: FragmentSet.empty([]), events: FragmentSet.empty([]) };
  /** Per format: the body served, the one being written, whether it was ever scraped (and with gzip). */
  private readonly current: [Built?, Built?, Built?] = [];
  private readonly building: Array<{ version: number; promise: Promise<Built> } | undefined> = [];
  private readonly wanted = [false, false, false];
  private readonly gzipWanted = [false, false, false];

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

  /**
   * A prom-client value changed between collections. `urgent`: the next scrape must see it (it waits for a new
   * body); otherwise new bodies are written at once in the background, and scrapes keep the current one meanwhile.
   */
  invalidate(urgent = false): void {
    this.version += 1;
    const version = this.version;
    if (urgent) {
      this.required = version;
      return;
    }
    this.writeWanted(version).then(
      () => (this.required = Math.max(this.required, version)),
      () => undefined,
    );
  }

  /** Bodies at `version` or later of every format that was scraped. */
  private async writeWanted(version: number): Promise<void> {
    await Promise.all(FORMATS.map((_, i) => (this.wanted[i] ? this.upTo(i as 0 | 1 | 2, version) : undefined)));
  }

  /**
   * Replaces one part's fragments (queue gauges or event series, see exposition-fragments.ts) and writes new
   * bodies of the formats that were scraped; resolves once they are served. Meanwhile scrapes get the previous
   * complete bodies, never a partial one (`urgent`: they wait for the new one). Call it after setting the
   * prom-client values of the same change.
   */
  async publish(part: FragmentPart, set: FragmentSet, urgent = false): Promise<void> {
    this.parts[part] = set;
    this.version += 1;
    const version = this.version;
    // Values that must not be served any more (stale ones): scrapes wait for the new body.
    if (urgent) this.required = version;
    await this.writeWanted(version);
    this.required = Math.max(this.required, version);
  }

  /** @param format a negotiated format; true/false for OpenMetrics/the Prometheus text format. */
  async render(format: ExpositionFormat | boolean, acceptGzip = false): Promise<RenderedMetrics> {
    const f: ExpositionFormat = format === true ? 'openmetrics' : format === false ? 'text' : format;
    const i = FORMATS.indexOf(f) as 0 | 1 | 2;
    this.wanted[i] = true;
    if (acceptGzip) this.gzipWanted[i] = true;
    let r = this.current[i];
    if (r === undefined || r.version < this.required) r = await this.upTo(i, this.required);
    else if (r.version !== this.version || Date.now() - r.at >= this.liveMaxAgeMs) {
      // Newer values that need not be waited for, or only the process metrics are stale: this body is served
      // while the next is written and compressed (sliced, and off the event loop), the next scrapes get that one.
      this.refresh(i).catch(() => undefined);
    }
    const contentType = CONTENT_TYPES[f];
    if (!acceptGzip) return { contentType, body: r.body };
    r.gzipped ??= compress(r.body);
    return { contentType, body: await r.gzipped, contentEncoding: 'gzip' };
  }

  /** A body of format i at `version` or later. */
  private async upTo(i: 0 | 1 | 2, version: number): Promise<Built> {
    for (;;) {
      const r = this.current[i];
      if (r !== undefined && r.version >= version) return r;
      await this.refresh(i);
    }
  }

  /** The body being written for format i if it covers the current version, else a new one, written after it. */
  private refresh(i: 0 | 1 | 2): Promise<Built> {
    const pending = this.building[i];
    if (pending && pending.version === this.version) return pending.promise;
    const after = pending
      ? pending.promise.then(
          () => undefined,
          () => undefined,
        )
      : Promise.resolve();
    const promise = after.then(async () => {
      const b = await this.write(i);
      if (this.gzipWanted[i]) {
        b.gzipped = compress(b.body);
        await b.gzipped;
      }
      const cur = this.current[i];
      if (cur === undefined || cur.version <= b.version) this.current[i] = b;
      return b;
    });
    const entry = { version: this.version, promise };
    this.building[i] = entry;
    const done = () => {
      if (this.building[i] === entry) this.building[i] = undefined;
    };
    promise.then(done, done);
    return promise;
  }

  /** Writes a whole body of format i from the parts as they are now. */
  private async write(i: 0 | 1 | 2): Promise<Built> {
    const version = this.version;
    const at = Date.now();
    const parts = [this.parts.collection, this.parts.events];
    const slicer = new Slicer();
    if (i === 2) {
      const [head, tail] = await Promise.all([encodeRegistry(this.cached[0]), encodeRegistry(this.live[0])]);
      const size = head.length + parts.reduce((n, p) => n + p.protoSize(), 0) + tail.length;
      const body = await assemble(size, async (t) => {
        let pos = head.copy(t, 0);
        for (const p of parts) pos = await p.writeProto(t, pos, slicer);
        return pos + tail.copy(t, pos);
      });
      return { version, at, body };
    }
    const om = i === 1;
    let headText = await this.cached[i].metrics();
    if (om) headText = headText.replace(/# EOF\n?$/, '');
    const head = Buffer.from(headText);
    const tail = Buffer.from(await this.live[i].metrics());
    const size = head.length + parts.reduce((n, p) => n + p.textSize(om), 0) + tail.length;
    const body = await assemble(size, async (t) => {
      let pos = head.copy(t, 0);
      for (const p of parts) pos = await p.writeText(om, t, pos, slicer);
      return pos + tail.copy(t, pos);
    });
    return { version, at, body };
  }

  private add<M extends AnyMetric>(metric: M): M {
    for (const r of this.cached) r.registerMetric(metric as unknown as client.Metric);
    return metric;
  }
}
