// Rendering proportional to change. Each queue's series are rendered once, in the Prometheus text format and as
// protobuf Metric messages at the same time, into one fragment per queue (its bytes family by family); a fragment
// is kept while its inputs (a fingerprint of the values) do not change, so a collection in which 10% of the queues
// moved renders 10% of them. A body is then written from the fragments family by family (the text format wants a
// family's samples together, under one header), copying bytes, in slices (see Slicer). Text and protobuf come from
// the same call with the same labels and values, so the two expositions cannot disagree.
import type client from 'prom-client';
import { METRIC_FIELD_TAG, METRIC_TYPE, Metric, MetricFamily, type HistogramMessage, type MetricFamilyMessage, type MetricMessage } from './client-model.js';
import type { MetricDef } from './definitions.js';
import { header, num } from './exposition-text.js';
import { nativeFields, type NativeBuckets } from './exposition-protobuf.js';
import { Slicer } from '../util/slicer.js';

export type FamilySpec = Pick<MetricDef, 'name' | 'help' | 'type'>;
/** Label names and values, unescaped, in the order the text writes them. */
export type Pairs = ReadonlyArray<readonly [string, string]>;

/** One queue's (or one prefix's) series: per family, its text lines and its encoded Metric fields, as byte ranges. */
export interface Fragment {
  /** What it was rendered from: equal fingerprints render equal bytes. */
  fp: string;
  /**
   * All of it in one buffer (one object and one backing store per fragment, not one per part: 20,000 fragments
   * at 10,000 queues): its text family by family, its protobuf family by family, then the tables of families + 1
   * offsets into the buffer where each family's text (and, with its protobuf, each family's protobuf) starts, LE,
   * uint16 when the whole store fits in 64 KB (every queue's does) and uint32 otherwise (see familyStart()).
   */
  store: Buffer;
  /** Whether its protobuf was written (FragmentWriter.withProto); without it its protobuf ranges are empty. */
  proto: boolean;
}

/** Where family f's bytes (f = families: the end of the last) start in a fragment's store, in one format. */
function familyStart(fr: Fragment, families: number, format: 'text' | 'proto', f: number): number {
  const width = offsetWidth(fr.store.length);
  const tables = fr.store.length - width * (families + 1) * (fr.proto ? 2 : 1);
  // Without its protobuf every protobuf range is empty, at the end of the text.
  if (format === 'proto' && !fr.proto) return tables;
  const at = tables + width * ((format === 'text' ? 0 : families + 1) + f);
  return width === 2 ? fr.store.readUInt16LE(at) : fr.store.readUInt32LE(at);
}

/**
 * Bytes per offset of a store this long: 2 up to 64 KB (offsets of 16 bits then reach every byte of it). The
 * writer picks 2 whenever the store written with 2 fits, so the length alone tells the reader.
 */
function offsetWidth(storeLength: number): 2 | 4 {
  return storeLength <= 0xffff ? 2 : 4;
}

/** Protobuf field tags inside a Metric: the value message of each type, and the double inside it. */
const VALUE_TAG: Record<MetricDef['type'], number> = { gauge: (2 << 3) | 2, counter: (3 << 3) | 2, histogram: (7 << 3) | 2 };
const LABEL_TAG = (1 << 3) | 2;
const DOUBLE_TAG = (1 << 3) | 1;

export class FragmentWriter {
  private readonly text: string[];
  /** The encoded Metric fields in the order written, and the family and end of each. */
  private proto = Buffer.allocUnsafe(1024);
  private len = 0;
  private readonly fam: number[] = [];
  /** Where each family starts in the text and in the protobuf of the fragment being finished (scratch). */
  private readonly textOff: Uint32Array;
  private readonly protoOff: Uint32Array;
  private readonly ends: number[] = [];
  /**
   * Whether the protobuf is written beside the text. Off while nobody scrapes protobuf (Prometheus without native
   * histograms asks for text): a fragment is then its text alone (~8 MB less at 10,000 queues with traffic).
   */
  withProto = true;

  constructor(private readonly families: number) {
    this.text = new Array<string>(families).fill('');
    this.textOff = new Uint32Array(families + 1);
    this.protoOff = new Uint32Array(families + 1);
  }

  /** A gauge or counter sample. `labels` is `pairs` as exposition text (escaped, see renderLabels). */
  sample(f: number, def: FamilySpec, labels: string, pairs: Pairs, value: number): void {
    this.text[f] += labels === '' ? `${def.name} ${num(value)}\n` : `${def.name}{${labels}} ${num(value)}\n`;
    if (!this.withProto) return;
    // Metric { label..., gauge|counter { double value } }, written by hand: a queue has ~20 of them per render.
    const metricLength = labelsLength(pairs) + 11;
    this.room(1 + 5 + metricLength);
    const b = this.proto;
    b[this.len++] = METRIC_FIELD_TAG;
    this.len = writeVarint(b, this.len, metricLength);
    this.len = writeLabels(b, this.len, pairs);
    b[this.len++] = VALUE_TAG[def.type];
    b[this.len++] = 9;
    b[this.len++] = DOUBLE_TAG;
    this.len = b.writeDoubleLE(value, this.len);
    this.mark(f);
  }

  /**
   * A histogram: `cumulative` holds one count per bound and the +Inf one (= count); `le` the `le="…"` label text of
   * each. With native buckets the protobuf carries them beside the classic ones.
   */
  histogram(
    f: number,
    def: FamilySpec,
    labels: string,
    pairs: Pairs,
    h: { bounds: readonly number[]; le: readonly string[]; cumulative: readonly number[]; sum: number; count: number; native?: NativeBuckets },
  ): void {
    const sep = labels === '' ? '' : ',';
    let t = '';
    for (let i = 0; i < h.le.length; i += 1) t += `${def.name}_bucket{${labels}${sep}${h.le[i]!}} ${num(h.cumulative[i]!)}\n`;
    const l = labels === '' ? '' : `{${labels}}`;
    this.text[f] += `${t}${def.name}_sum${l} ${num(h.sum)}\n${def.name}_count${l} ${num(h.count)}\n`;
    if (!this.withProto) return;
    const msg: HistogramMessage = {
      sampleCount: h.count,
      sampleSum: h.sum,
      bucket: h.le.map((_, i) => ({ cumulativeCount: h.cumulative[i]!, upperBound: h.bounds[i] ?? Number.POSITIVE_INFINITY })),
      ...(h.native ? nativeFields(h.native) : {}),
    };
    const bytes = Metric.encode({ label: pairs.map(([name, value]) => ({ name, value })), histogram: msg } as unknown as Record<string, unknown>).finish();
    this.room(1 + 5 + bytes.length);
    this.proto[this.len++] = METRIC_FIELD_TAG;
    this.len = writeVarint(this.proto, this.len, bytes.length);
    this.proto.set(bytes, this.len);
    this.len += bytes.length;
    this.mark(f);
  }

  /** The fragment written since the last finish(); the writer is then empty, ready for the next one. */
  finish(fp: string): Fragment {
    const { textOff, protoOff } = this;
    const perFamily = new Array<number>(this.families).fill(0);
    let start = 0;
    let ordered = true;
    for (let k = 0; k < this.fam.length; k += 1) {
      perFamily[this.fam[k]!]! += this.ends[k]! - start;
      start = this.ends[k]!;
      if (k > 0 && this.fam[k]! < this.fam[k - 1]!) ordered = false;
    }
    for (let f = 0; f < this.families; f += 1) {
      textOff[f + 1] = textOff[f]! + Buffer.byteLength(this.text[f]!);
      protoOff[f + 1] = protoOff[f]! + perFamily[f]!;
    }
    // Not from Buffer's shared pool: a fragment outlives its neighbours there, and would keep their 8 KB slab alive.
    // One store for its text and protobuf: one allocation (and one backing store for the GC to track) per fragment.
    const textLength = textOff[this.families]!;
    const tables = textLength + this.len;
    // The offset tables (see Fragment.store): the protobuf's only when it was written, 16-bit offsets if they fit.
    const entries = (this.families + 1) * (this.withProto ? 2 : 1);
    const width = offsetWidth(tables + 2 * entries);
    const store = Buffer.allocUnsafeSlow(tables + width * entries);
    const proto = store.subarray(textLength, tables);
    if (ordered) this.proto.copy(proto, 0, 0, this.len);
    else {
      // Written out of family order (counters with job names): each sample moved to its family's range.
      const at = Array.from(protoOff.subarray(0, this.families));
      start = 0;
      for (let k = 0; k < this.fam.length; k += 1) {
        const f = this.fam[k]!;
        at[f]! += this.proto.copy(proto, at[f]!, start, this.ends[k]!);
        start = this.ends[k]!;
      }
    }
    for (let f = 0; f < this.families; f += 1) store.write(this.text[f]!, textOff[f]!);
    const put = (v: number, i: number): number => (width === 2 ? store.writeUInt16LE(v, tables + 2 * i) : store.writeUInt32LE(v, tables + 4 * i));
    for (let f = 0; f <= this.families; f += 1) {
      put(textOff[f]!, f);
      if (this.withProto) put(textLength + protoOff[f]!, this.families + 1 + f);
    }
    const fragment = { fp, store, proto: this.withProto };
    this.reset();
    return fragment;
  }

  /** Empty again, its scratch space kept: one writer renders queue after queue (finish() calls it). */
  private reset(): void {
    this.text.fill('');
    this.len = 0;
    this.fam.length = 0;
    this.ends.length = 0;
  }

  private room(n: number): void {
    if (this.len + n <= this.proto.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.proto.length * 2, this.len + n));
    this.proto.copy(b, 0, 0, this.len);
    this.proto = b;
  }

  private mark(f: number): void {
    this.fam.push(f);
    this.ends.push(this.len);
  }
}

/** One LabelPair message's length: name (field 1) and value (field 2), both strings. */
function labelPairLength(name: string, value: string): number {
  const n = Buffer.byteLength(name);
  const v = Buffer.byteLength(value);
  return 2 + varintLength(n) + n + varintLength(v) + v;
}

/** The bytes writeLabels() writes for `pairs`. */
function labelsLength(pairs: Pairs): number {
  let len = 0;
  for (const [name, value] of pairs) {
    const pair = labelPairLength(name, value);
    len += 1 + varintLength(pair) + pair;
  }
  return len;
}

/**
 * `pairs` as LabelPair fields (Metric field 1) at `at`, written by hand into the target: nothing is allocated or
 * kept per sample (it was a protobufjs Writer and a Buffer per label set, most of the heap churn of re-rendering a
 * queue whose age moved).
 */
function writeLabels(target: Buffer, at: number, pairs: Pairs): number {
  let pos = at;
  for (const [name, value] of pairs) {
    target[pos++] = LABEL_TAG;
    pos = writeVarint(target, pos, labelPairLength(name, value));
    target[pos++] = 10;
    pos = writeVarint(target, pos, Buffer.byteLength(name));
    pos += target.write(name, pos);
    target[pos++] = 18;
    pos = writeVarint(target, pos, Buffer.byteLength(value));
    pos += target.write(value, pos);
  }
  return pos;
}

/**
 * The fragments of one part of the body (the queue gauges, or the event series), in body order, with their
 * families. `alwaysHeader`: the text carries a family's HELP/TYPE even without samples (the protobuf never
 * carries an empty family).
 */
export class FragmentSet {
  private readonly textBytes: number[];
  private readonly protoBytes: number[];
  /** The set written out whole, per format (text, OpenMetrics, protobuf), once asked for; and gzipped. */
  private readonly written: Array<Promise<Buffer> | undefined> = [];
  private readonly compressed: Array<Promise<Buffer> | undefined> = [];
  /** Whether every fragment carries its protobuf: only then can the set be written as protobuf. */
  readonly proto: boolean;

  constructor(
    readonly families: readonly FamilySpec[],
    readonly fragments: readonly Fragment[],
    private readonly alwaysHeader = false,
  ) {
    this.textBytes = new Array<number>(families.length).fill(0);
    this.protoBytes = new Array<number>(families.length).fill(0);
    let proto = true;
    for (const fr of fragments) {
      proto &&= fr.proto;
      for (let f = 0; f < families.length; f += 1) {
        this.textBytes[f]! += familyStart(fr, families.length, 'text', f + 1) - familyStart(fr, families.length, 'text', f);
        this.protoBytes[f]! += familyStart(fr, families.length, 'proto', f + 1) - familyStart(fr, families.length, 'proto', f);
      }
    }
    this.proto = proto;
  }

  static empty(families: readonly FamilySpec[], alwaysHeader = false): FragmentSet {
    return new FragmentSet(families, [], alwaysHeader);
  }

  /**
   * The set's bytes in format i (0 text, 1 OpenMetrics, 2 protobuf) compressed by `gzipOf`, once. Fed in blocks
   * straight from the fragments (see BlockSink), not from bytes(i): a body scraped only with gzip (what Prometheus
   * asks for) never holds its text in one buffer (16.6 MB at 10,000 queues with traffic, two while a new set is
   * written). When bytes(i) were written for a plain scrape, they are compressed instead. The same bytes in the same
   * order either way, so the same gzip.
   */
  gzipped(i: 0 | 1 | 2, gzipOf: GzipOf): Promise<Buffer> {
    let c = this.compressed[i];
    if (!c) {
      const written = this.written[i];
      c = written ? written.then((b) => gzipOf(async (emit) => emit(b))) : gzipOf((emit) => this.write(i, new BlockSink(emit), new Slicer()));
      this.compressed[i] = c;
      c.catch(() => (this.compressed[i] = undefined));
    }
    return c;
  }

  /**
   * The set's bytes in format i, written once into one buffer, in slices, and kept (for plain scrapes): a body
   * written again because the other part or the process metrics changed copies them whole instead of copying
   * every fragment again.
   */
  bytes(i: 0 | 1 | 2): Promise<Buffer> {
    let w = this.written[i];
    if (!w) {
      const slicer = new Slicer();
      w = assemble(i === 2 ? this.protoSize() : this.textSize(i === 1), (t) => this.write(i, new BufferSink(t), slicer));
      this.written[i] = w;
      w.catch(() => (this.written[i] = undefined));
    }
    return w;
  }

  private write(i: 0 | 1 | 2, sink: Sink, slicer: Slicer): Promise<number> {
    return i === 2 ? this.writeProto(sink, slicer) : this.writeText(i === 1, sink, slicer);
  }

  textSize(openMetrics: boolean): number {
    let n = 0;
    for (let f = 0; f < this.families.length; f += 1) {
      if (this.textBytes[f] === 0 && !this.alwaysHeader) continue;
      n += Buffer.byteLength(header(this.families[f]!, openMetrics)) + this.textBytes[f]!;
    }
    return n;
  }

  /** The text, family by family; resolves to the bytes written. */
  async writeText(openMetrics: boolean, sink: Sink, slicer: Slicer): Promise<number> {
    for (let f = 0; f < this.families.length; f += 1) {
      if (this.textBytes[f] === 0 && !this.alwaysHeader) continue;
      await sink.put(Buffer.from(header(this.families[f]!, openMetrics)));
      if (this.textBytes[f] !== 0) await this.copyFamily(f, 'text', sink, slicer);
    }
    return sink.end();
  }

  /** Family f's bytes of every fragment, in order, in one format. */
  private async copyFamily(f: number, format: 'text' | 'proto', sink: Sink, slicer: Slicer): Promise<void> {
    for (const fr of this.fragments) {
      const a = familyStart(fr, this.families.length, format, f);
      const b = familyStart(fr, this.families.length, format, f + 1);
      if (b > a) {
        const pending = sink.put(fr.store, a, b);
        if (pending) await pending;
      }
      if (slicer.due()) await slicer.yield();
    }
  }

  protoSize(): number {
    let n = 0;
    for (let f = 0; f < this.families.length; f += 1) {
      if (this.protoBytes[f] === 0) continue;
      const len = familyHead(this.families[f]!).length + this.protoBytes[f]!;
      n += varintLength(len) + len;
    }
    return n;
  }

  /** Length-delimited MetricFamily messages: each family's head, then its Metric fields from every fragment. */
  async writeProto(sink: Sink, slicer: Slicer): Promise<number> {
    if (!this.proto) throw new Error('exposition: fragments rendered without their protobuf');
    const varint = Buffer.alloc(10);
    for (let f = 0; f < this.families.length; f += 1) {
      if (this.protoBytes[f] === 0) continue;
      const head = familyHead(this.families[f]!);
      await sink.put(varint, 0, writeVarint(varint, 0, head.length + this.protoBytes[f]!));
      await sink.put(head);
      await this.copyFamily(f, 'proto', sink, slicer);
    }
    return sink.end();
  }
}

/** Where a set's bytes are written, in order: put() copies them (returns a promise only when the caller must wait). */
export interface Sink {
  put(src: Buffer, start?: number, end?: number): Promise<void> | undefined;
  /** Every byte put is passed on; resolves to how many there were. */
  end(): Promise<number>;
}

/** Into one buffer of the right size. */
class BufferSink implements Sink {
  private pos = 0;
  constructor(private readonly target: Buffer) {}
  put(src: Buffer, start = 0, end = src.length): undefined {
    this.pos += src.copy(this.target, this.pos, start, end);
    return undefined;
  }
  end(): Promise<number> {
    return Promise.resolve(this.pos);
  }
}

/** How a gzip is made of bytes produced in order: `produce` emits them, waiting for each to be taken. */
export type GzipOf = (produce: (emit: (b: Buffer) => Promise<void>) => Promise<unknown>) => Promise<Buffer>;

/** Bytes of a set passed on in blocks of BLOCK bytes (to a compressor), never all in memory at once. */
const BLOCK = 64 * 1024;
class BlockSink implements Sink {
  private block = Buffer.allocUnsafeSlow(BLOCK);
  private at = 0;
  private total = 0;
  constructor(private readonly emit: (b: Buffer) => Promise<void>) {}

  put(src: Buffer, start = 0, end = src.length): Promise<void> | undefined {
    const n = Math.min(end - start, BLOCK - this.at);
    src.copy(this.block, this.at, start, start + n);
    this.at += n;
    this.total += n;
    if (this.at < BLOCK) return undefined;
    return this.flush().then(() => this.put(src, start + n, end));
  }

  private async flush(): Promise<void> {
    if (this.at === 0) return;
    // A new block: the compressor may still hold the last one.
    const full = this.block.subarray(0, this.at);
    this.block = Buffer.allocUnsafeSlow(BLOCK);
    this.at = 0;
    await this.emit(full);
  }

  async end(): Promise<number> {
    await this.flush();
    return this.total;
  }
}

const heads = new Map<string, Buffer>();
/** A MetricFamily's name, help and type fields (its metrics follow as field 4). */
function familyHead(def: FamilySpec): Buffer {
  let h = heads.get(def.name);
  if (!h) {
    h = Buffer.from(MetricFamily.encode({ name: def.name, help: def.help, type: METRIC_TYPE[def.type] }).finish());
    heads.set(def.name, h);
  }
  return h;
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len += 1;
  }
  return len;
}

function writeVarint(target: Buffer, at: number, n: number): number {
  let pos = at;
  while (n >= 0x80) {
    target[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  target[pos++] = n;
  return pos;
}

/**
 * prom-client's own metrics (the exporter's self-metrics, the process metrics) as length-delimited MetricFamily
 * messages, from the registry's values (getMetricsAsJSON), not from its text.
 */
export async function encodeRegistry(registry: client.Registry): Promise<Buffer> {
  const families = await registry.getMetricsAsJSON();
  const out: Uint8Array[] = [];
  for (const m of families) {
    const type = METRIC_TYPE[m.type as unknown as keyof typeof METRIC_TYPE] ?? METRIC_TYPE.untyped;
    const values = m.values as Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
    const metric: MetricMessage[] = [];
    if (type === METRIC_TYPE.histogram || type === METRIC_TYPE.summary) {
      const bound = type === METRIC_TYPE.histogram ? 'le' : 'quantile';
      const series = new Map<string, MetricMessage>();
      for (const v of values) {
        const label = Object.entries(v.labels)
          .filter(([k]) => k !== bound)
          .map(([name, value]) => ({ name, value: String(value) }));
        const key = JSON.stringify(label);
        let s = series.get(key);
        if (!s) {
          s =
            type === METRIC_TYPE.histogram
              ? { label, histogram: { sampleCount: 0, sampleSum: 0, bucket: [] } }
              : { label, summary: { sampleCount: 0, sampleSum: 0, quantile: [] } };
          series.set(key, s);
          metric.push(s);
        }
        const part = (s.histogram ?? s.summary)!;
        const suffix = (v.metricName ?? m.name).slice(m.name.length);
        if (suffix === '_sum') part.sampleSum = v.value;
        else if (suffix === '_count') part.sampleCount = v.value;
        else {
          const at = bound in v.labels ? Number(String(v.labels[bound]).replace(/^\+?Inf$/, 'Infinity')) : Number.NaN;
          if (s.histogram) s.histogram.bucket.push({ cumulativeCount: v.value, upperBound: at });
          else s.summary!.quantile.push({ quantile: at, value: v.value });
        }
      }
    } else {
      const field = type === METRIC_TYPE.counter ? 'counter' : type === METRIC_TYPE.gauge ? 'gauge' : 'untyped';
      for (const v of values) {
        metric.push({ label: Object.entries(v.labels).map(([name, value]) => ({ name, value: String(value) })), [field]: { value: v.value } });
      }
    }
    if (metric.length === 0) continue;
    const msg: MetricFamilyMessage = { name: m.name, help: m.help, type, metric };
    out.push(MetricFamily.encodeDelimited(msg as unknown as Record<string, unknown>).finish());
  }
  return Buffer.concat(out);
}

/** Bytes written in order into one new buffer of `size`, in slices. */
export async function assemble(size: number, write: (target: Buffer) => Promise<number>): Promise<Buffer> {
  const target = Buffer.allocUnsafe(size);
  const end = await write(target);
  if (end !== size) throw new Error(`exposition body: ${end} bytes written, ${size} expected`);
  return target;
}
