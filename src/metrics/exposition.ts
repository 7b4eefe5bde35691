// Owns the private registries and the /metrics body. The queue gauges and event series arrive as fragments
// (exposition-fragments.ts: text and protobuf per queue, re-rendered only for queues that changed); the exporter's
// self-metrics and the process metrics come from prom-client, the latter re-read when older than `liveMaxAgeMs`.
// Each part is gzipped once per change and format (a gzip member), fed straight from its fragments; its plain bytes
// are written out in one buffer only for plain scrapes. A body is the list of those chunks (never joined: sent chunk
// by chunk), its gzip the list of their members. Concurrent scrapes share it, and while the next one is written they
// are served the previous complete one: with 10,000 queues a body is tens of MB, and writing or compressing it per
// scrape would make 50 scrapers queue behind each other.
import { Readable } from 'node:stream';
import { createGzip, constants as zlib } from 'node:zlib';
import client from 'prom-client';
import type { MetricDef } from './definitions.js';
import { PROTOBUF_CONTENT_TYPE } from './exposition-protobuf.js';
import { encodeRegistry, FragmentSet, type GzipOf } from './exposition-fragments.js';

const { Registry, Gauge, Counter, Histogram, collectDefaultMetrics } = client;
/**
 * The gzip of a body as members: prom-client's head and the process metrics compressed each time, each part's
 * bytes once per part (kept with it), so a new body costs the compression of what changed. Members follow each
 * other in one stream, which gzip readers (Go's, zlib's) read as the concatenation.
 */
function gzipMembers(b: Built, i: 0 | 1 | 2): Promise<Buffer[]> {
  const one = (c: Buffer) => gzipOf(async (emit) => emit(c));
  return Promise.all([one(b.head), ...b.parts.map((p) => p.gzipped(i, gzipOf)), one(b.tail)]);
}

/**
 * One gzip member over the bytes `produce` emits, compressed in the libuv thread pool (the event loop serves other
 * scrapes meanwhile). Each emitted buffer is taken before the next is produced, so what is compressed is never held
 * whole; only the (small) output is.
 */
export const gzipOf: GzipOf = (produce) =>
  new Promise((resolve, reject) => {
    const z = createGzip({ level: zlib.Z_BEST_SPEED });
    const out: Buffer[] = [];
    z.on('data', (d: Buffer) => out.push(d));
    z.once('end', () => resolve(Buffer.concat(out)));
    z.once('error', reject);
    const emit = (c: Buffer) => new Promise<void>((res, rej) => z.write(c, (err) => (err ? rej(err) : res())));
    produce(emit).then(
      () => z.end(),
      (err: unknown) => {
        z.destroy();
        reject(err as Error);
      },
    );
  });

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
  /** The body in one buffer, joined on first use and kept with it (the HTTP route sends a gzipped body so, a plain one by `stream()`). */
  readonly body: Buffer;
  length: number;
  /** The body's bytes, from its chunks as they are kept (no copy of tens of MB per body). */
  stream(): Readable;
  /** Set when the body is gzip-compressed. */
  contentEncoding?: 'gzip';
}

function rendered(contentType: string, chunks: readonly Buffer[], contentEncoding?: 'gzip'): RenderedMetrics {
  let joined: Buffer | undefined;
  return {
    contentType,
    get body() {
      return (joined ??= chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    },
    length: chunks.reduce((n, c) => n + c.length, 0),
    stream: () =>
      Readable.from(
        chunks.filter((c) => c.length > 0),
        { objectMode: false },
      ),
    ...(contentEncoding ? { contentEncoding } : {}),
  };
}

/** A complete body of one format. */
interface Built {
  /** The version of the values it was written from (every change of a value bumps the version). */
  version: number;
  at: number;
  /** prom-client's head and the process metrics: the body is head, the parts' bytes, tail. */
  head: Buffer;
  tail: Buffer;
  /** The parts it was written from, whose gzip members are kept with them. */
  parts: readonly FragmentSet[];
  /** One gzip member per chunk (concatenated members are one gzip stream: RFC 1952, 2.2). */
  gzipped?: Promise<Buffer[]>;
  /** What scrapes of it get, shared: one object per body and encoding (plain: with the parts' bytes written out). */
  plain?: Promise<RenderedMetrics>;
  compressed?: Promise<RenderedMetrics>;
}

/** A body being written, and the version it is written at (or later). */
interface Pending {
  version: number;
  promise: Promise<Built>;
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
  /** Per format: the body served, the one being written, when it was last scraped (and with gzip; 0: never). */
  private readonly current: [Built?, Built?, Built?] = [];
  /** Per format: the bodies being written, oldest first (each is written after the one before it). */
  private readonly building: [Pending[], Pending[], Pending[]] = [[], [], []];
  private readonly wantedAt = [0, 0, 0];
  private readonly gzipWantedAt = [0, 0, 0];
  private readonly plainWantedAt = [0, 0, 0];
  /** Per part: renders its last input again, now with the protobuf (the part's renderer, onProtobufWanted()). */
  private readonly protoRenderers = new Map<FragmentPart, () => Promise<void>>();
  /** Protobuf bodies waiting for both parts to carry their protobuf: woken at each publish. */
  private protoWaiters: Array<() => void> = [];
  /** Protobuf bodies being written: while one waits, the renderers write the protobuf whatever `formatKeepMs`. */
  private protoWaiting = 0;

  /**
   * @param liveMaxAgeMs how stale process metrics may be, so a burst of scrapes shares one render.
   * @param formatKeepMs a format (or its gzip) not scraped for this long is no longer written at each change, and
   *   its body is let go (tens of MB at 10,000 queues); the next scrape of it waits for a whole new body.
   */
  constructor(
    private readonly liveMaxAgeMs = 1000,
    private readonly formatKeepMs = 5 * 60_000,
  ) {
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
   * A prom-client value changed between collections (cycle timing, the leader flag): the next scrape waits for a
   * body with it. Cheap: only prom-client's own families are rendered again, the parts' bytes are kept.
   */
  invalidate(): void {
    this.version += 1;
    this.required = this.version;
    // Written now, not by the next scrape: a scrape then waits at most for this body (prom-client's head and the
    // process metrics, the parts' gzip kept), not for the next collection's (16.6 MB written and gzipped at 10,000
    // queues), which it waited for whenever that collection was published before any scrape came (with traffic a
    // cycle ends every ~0.5 s and Prometheus scrapes every 15 s): 45-600 ms per burst of 50 scrapes in the harness.
    this.writeWanted(this.version).catch(() => undefined);
  }

  /**
   * Whether the renderers write each fragment's protobuf: only once protobuf was scraped within `formatKeepMs`
   * (Prometheus without native histograms never asks for it; its bytes are ~8 MB at 10,000 queues with traffic).
   */
  protobufWanted(): boolean {
    return this.protoWaiting > 0 || this.lately(this.wantedAt[2]!);
  }

  /**
   * `rerender` renders the part's last input again (with the protobuf, as protobufWanted() now says) and publishes
   * it: called when a protobuf scrape finds the part rendered without it. The scrape waits for that body.
   */
  onProtobufWanted(part: FragmentPart, rerender: () => Promise<void>): void {
    this.protoRenderers.set(part, rerender);
  }

  /** Whether the parts published now carry their protobuf (tests, the bench). */
  get partsWithProtobuf(): boolean {
    return this.parts.collection.proto && this.parts.events.proto;
  }

  /** The parts as they are now, once both carry their protobuf (rendered again for it when they do not). */
  private async partsWithProto(): Promise<FragmentSet[]> {
    this.protoWaiting += 1;
    try {
      for (;;) {
        const parts = [this.parts.collection, this.parts.events];
        if (parts.every((p) => p.proto)) return parts;
        const published = new Promise<void>((resolve) => this.protoWaiters.push(resolve));
        for (const [part, rerender] of this.protoRenderers) if (!this.parts[part].proto) rerender().catch(() => undefined);
        await published;
      }
    } finally {
      this.protoWaiting -= 1;
    }
  }

  /** Bodies at `version` or later of every format scraped lately; the bodies of the others are let go. */
  private async writeWanted(version: number): Promise<void> {
    await Promise.all(
      FORMATS.map((_, i) => {
        if (this.lately(this.wantedAt[i]!)) {
          // A part still rendered without its protobuf: its renderer publishes it again with it, and that
          // publish writes the body (a protobuf scrape meanwhile waits for it, see partsWithProto()).
          if (i === 2 && !(this.parts.collection.proto && this.parts.events.proto)) return undefined;
          return this.upTo(i as 0 | 1 | 2, version);
        }
        this.current[i] = undefined;
        return undefined;
      }),
    );
  }

  private lately(at: number): boolean {
    return at > 0 && Date.now() - at < this.formatKeepMs;
  }

  /** The formats whose bodies are kept now (scraped within `formatKeepMs`, or not yet let go). */
  keptFormats(): ExpositionFormat[] {
    return FORMATS.filter((_, i) => this.current[i] !== undefined);
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
    const waiters = this.protoWaiters;
    this.protoWaiters = [];
    for (const wake of waiters) wake();
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
    this.wantedAt[i] = Date.now();
    if (acceptGzip) this.gzipWantedAt[i] = this.wantedAt[i]!;
    else this.plainWantedAt[i] = this.wantedAt[i]!;
    let r = this.current[i];
    if (r === undefined || r.version < this.required) r = await this.upTo(i, this.required);
    else if (r.version !== this.version || Date.now() - r.at >= this.liveMaxAgeMs) {
      // Newer values that need not be waited for, or only the process metrics are stale: this body is served
      // while the next is written and compressed (sliced, and off the event loop), the next scrapes get that one.
      this.refresh(i).catch(() => undefined);
    }
    return acceptGzip ? this.compressed(r, i) : this.plain(r, i);
  }

  /** A body's plain bytes: the parts' written out (kept with them), between the head and the tail. */
  private plain(b: Built, i: 0 | 1 | 2): Promise<RenderedMetrics> {
    return (b.plain ??= Promise.all(b.parts.map((p) => p.bytes(i))).then((middle) => rendered(CONTENT_TYPES[FORMATS[i]!], [b.head, ...middle, b.tail])));
  }

  private compressed(b: Built, i: 0 | 1 | 2): Promise<RenderedMetrics> {
    b.gzipped ??= gzipMembers(b, i);
    return (b.compressed ??= b.gzipped.then((members) => rendered(CONTENT_TYPES[FORMATS[i]!], members, 'gzip')));
  }

  /** A body of format i at `version` or later. */
  private async upTo(i: 0 | 1 | 2, version: number): Promise<Built> {
    for (;;) {
      const r = this.current[i];
      if (r !== undefined && r.version >= version) return r;
      // The first body under way that will do (the one invalidate() started, not a later collection's written after
      // it), else a new one. Its own result, not this.current[i]: a format let go meanwhile is not kept, yet this
      // scrape has its body.
      const pending = this.building[i].find((p) => p.version >= version);
      const b = await (pending ? pending.promise : this.refresh(i));
      if (b.version >= version) return b;
    }
  }

  /** The body being written for format i if it covers the current version, else a new one, written after it. */
  private refresh(i: 0 | 1 | 2): Promise<Built> {
    const pending = this.building[i].at(-1);
    if (pending && pending.version === this.version) return pending.promise;
    const after = pending
      ? pending.promise.then(
          () => undefined,
          () => undefined,
        )
      : Promise.resolve();
    const promise = after.then(async () => {
      const b = await this.write(i);
      // Served once ready in the encodings scraped lately: a plain body only if plain scrapes came.
      await Promise.all([this.lately(this.gzipWantedAt[i]!) && this.compressed(b, i), this.lately(this.plainWantedAt[i]!) && this.plain(b, i)]);
      const cur = this.current[i];
      if (cur === undefined || cur.version <= b.version) this.current[i] = b;
      return b;
    });
    const entry = { version: this.version, promise };
    this.building[i].push(entry);
    const done = () => {
      this.building[i] = this.building[i].filter((p) => p !== entry);
    };
    promise.then(done, done);
    return promise;
  }

  /** A body of format i from the parts as they are now: prom-client's head, the parts, the process metrics. */
  private async write(i: 0 | 1 | 2): Promise<Built> {
    // Protobuf: the first scrape after a text-only period waits for the parts rendered with their protobuf.
    const parts = i === 2 ? await this.partsWithProto() : [this.parts.collection, this.parts.events];
    const version = this.version;
    const at = Date.now();
    let head: Buffer;
    let tail: Buffer;
    if (i === 2) [head, tail] = await Promise.all([encodeRegistry(this.cached[0]), encodeRegistry(this.live[0])]);
    else {
      let headText = await this.cached[i].metrics();
      if (i === 1) headText = headText.replace(/# EOF\n?$/, '');
      head = Buffer.from(headText);
      tail = Buffer.from(await this.live[i].metrics());
    }
    return { version, at, head, tail, parts };
  }

  private add<M extends AnyMetric>(metric: M): M {
    for (const r of this.cached) r.registerMetric(metric as unknown as client.Metric);
    return metric;
  }
}
