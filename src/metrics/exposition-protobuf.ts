// The protobuf exposition (Content-Type application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
// encoding=delimited): what a Prometheus with native histograms enabled asks for. Every family is rendered as
// text first (prom-client's registries, the pre-rendered queue gauges and event metrics), so the text is parsed
// back into MetricFamily messages here; the latency histograms then get their native (exponential) buckets from
// the accounting, which keeps them exactly. They keep their classic buckets too: a Prometheus that negotiates
// protobuf but does not ingest native histograms (or keeps both, scrape_classic_histograms) reads those, and
// one that ingests native ones ignores them. prom-client has no protobuf support; protobufjs encodes.
import { METRIC_TYPE, MetricFamily, type HistogramMessage, type LabelPair, type MetricFamilyMessage, type MetricMessage } from './client-model.js';

export const PROTOBUF_CONTENT_TYPE = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';

/** The native buckets of one histogram series: count per bucket index of `schema`, and the zero bucket. */
export interface NativeBuckets {
  schema: number;
  zeroThreshold: number;
  zeroCount: number;
  buckets: ReadonlyMap<number, number>;
}

/** Identifies a histogram series across the text and the native side channel: its name and labels (not le). */
export function nativeKey(name: string, labels: ReadonlyArray<readonly [string, string]>): string {
  return [name, ...[...labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([n, v]) => `${n}=${v}`)].join('\u0000');
}

type Kind = keyof typeof METRIC_TYPE;

interface Family {
  msg: MetricFamilyMessage;
  kind: Kind;
  /** Histogram and summary series, by their labels without le/quantile. */
  series: Map<string, MetricMessage>;
}

/** Parses exposition text (the Prometheus text format, as prom-client and exposition-text.ts write it). */
export function parseText(text: string, native: ReadonlyMap<string, NativeBuckets> = new Map()): MetricFamilyMessage[] {
  const families: Family[] = [];
  const byName = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = byName.get(name);
    if (!f) {
      f = { msg: { name, help: '', type: METRIC_TYPE.untyped, metric: [] }, kind: 'untyped', series: new Map() };
      byName.set(name, f);
      families.push(f);
    }
    return f;
  };
  let current: Family | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue;
      const f = family(m[2]!);
      if (m[1] === 'HELP') f.msg.help = unescapeHelp(m[3]!);
      else if (m[3]! in METRIC_TYPE) {
        f.kind = m[3] as Kind;
        f.msg.type = METRIC_TYPE[f.kind];
      }
      current = f;
      continue;
    }
    const { name, labels, value } = parseSample(line);
    const f = current && belongs(current, name) ? current : family(name);
    const suffix = name.slice(f.msg.name.length);
    if (f.kind === 'histogram' || f.kind === 'summary') {
      const bound = f.kind === 'histogram' ? 'le' : 'quantile';
      const own = labels.filter((l) => l.name !== bound);
      const key = own.map((l) => `${l.name}=${l.value}`).join('\u0000');
      let metric = f.series.get(key);
      if (!metric) {
        metric =
          f.kind === 'histogram'
            ? { label: own, histogram: { sampleCount: 0, sampleSum: 0, bucket: [] } }
            : { label: own, summary: { sampleCount: 0, sampleSum: 0, quantile: [] } };
        f.series.set(key, metric);
        f.msg.metric.push(metric);
        if (metric.histogram)
          addNative(
            metric.histogram,
            native.get(
              nativeKey(
                f.msg.name,
                own.map((l) => [l.name, l.value]),
              ),
            ),
          );
      }
      const part = metric.histogram ?? metric.summary!;
      if (suffix === '_sum') part.sampleSum = value;
      else if (suffix === '_count') part.sampleCount = value;
      else {
        const at = parseNumber(labels.find((l) => l.name === bound)?.value ?? 'NaN');
        if (metric.histogram) metric.histogram.bucket.push({ cumulativeCount: value, upperBound: at });
        else metric.summary!.quantile.push({ quantile: at, value });
      }
    } else {
      f.msg.metric.push({ label: labels, [f.kind]: { value } });
    }
  }
  return families.map((f) => f.msg);
}

/** Length-delimited MetricFamily messages, the body of the protobuf exposition. */
export function encodeFamilies(families: readonly MetricFamilyMessage[]): Buffer {
  return Buffer.concat(families.map((f) => MetricFamily.encodeDelimited(f as unknown as Record<string, unknown>).finish()));
}

function belongs(f: Family, sample: string): boolean {
  if (sample === f.msg.name) return true;
  if (f.kind !== 'histogram' && f.kind !== 'summary') return false;
  const suffix = sample.slice(f.msg.name.length);
  return sample.startsWith(f.msg.name) && (suffix === '_sum' || suffix === '_count' || (f.kind === 'histogram' && suffix === '_bucket'));
}

/** Spans and deltas of the populated buckets; a no-op span when there are none (see NATIVE_ZERO_THRESHOLD). */
function addNative(h: HistogramMessage, n: NativeBuckets | undefined): void {
  if (!n) return;
  h.schema = n.schema;
  h.zeroThreshold = n.zeroThreshold;
  h.zeroCount = n.zeroCount;
  const indices = [...n.buckets.keys()].filter((i) => (n.buckets.get(i) ?? 0) > 0).sort((a, b) => a - b);
  const spans: Array<{ offset: number; length: number }> = [];
  const deltas: number[] = [];
  let prevIndex = 0;
  let prevCount = 0;
  for (const [k, i] of indices.entries()) {
    const last = spans.at(-1);
    if (last && i === prevIndex + 1) last.length += 1;
    else spans.push({ offset: k === 0 ? i : i - prevIndex - 1, length: 1 });
    const c = n.buckets.get(i)!;
    deltas.push(c - prevCount);
    prevCount = c;
    prevIndex = i;
  }
  h.positiveSpan = spans.length > 0 ? spans : [{ offset: 0, length: 0 }];
  h.positiveDelta = deltas;
}

function parseSample(line: string): { name: string; labels: LabelPair[]; value: number } {
  const brace = line.indexOf('{');
  const space = line.indexOf(' ');
  if (brace < 0 || (space >= 0 && space < brace)) {
    return { name: line.slice(0, space), labels: [], value: parseNumber(line.slice(space + 1).split(' ')[0]!) };
  }
  const name = line.slice(0, brace);
  const labels: LabelPair[] = [];
  let i = brace + 1;
  while (line[i] !== '}') {
    if (line[i] === ',') i += 1;
    if (line[i] === '}') break;
    const eq = line.indexOf('="', i);
    const label = line.slice(i, eq);
    i = eq + 2;
    let value = '';
    while (line[i] !== '"') {
      if (line[i] === '\\') {
        const next = line[i + 1];
        value += next === 'n' ? '\n' : next;
        i += 2;
      } else {
        value += line[i];
        i += 1;
      }
      if (i >= line.length) throw new Error(`unterminated label value in ${line.slice(0, 200)}`);
    }
    i += 1;
    labels.push({ name: label, value });
  }
  return {
    name,
    labels,
    value: parseNumber(
      line
        .slice(i + 1)
        .trim()
        .split(' ')[0]!,
    ),
  };
}

function parseNumber(s: string): number {
  if (s === '+Inf' || s === 'Inf') return Number.POSITIVE_INFINITY;
  if (s === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(s);
}

function unescapeHelp(s: string): string {
  return s.replace(/\\(\\|n)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));
}
