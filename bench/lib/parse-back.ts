// The OLD protobuf path, kept only as the baseline of bench/exposition.ts: the exposition text parsed back into
// MetricFamily messages, then encoded (what src/metrics/exposition.ts did before the protobuf was encoded straight
// from the values). Not used by the sidecar.
import type { Slicer } from '../../src/util/slicer.js';
import protobuf from 'protobufjs';
import {
  METRIC_FIELD_TAG,
  METRIC_TYPE,
  Metric,
  MetricFamily,
  type HistogramMessage,
  type LabelPair,
  type MetricFamilyMessage,
  type MetricMessage,
} from '../../src/metrics/client-model.js';

import { nativeFields, type NativeBuckets } from '../../src/metrics/exposition-protobuf.js';

/**
 * Identifies a histogram series across the text and the native side channel: its name and its labels but le, in
 * the order the text writes them.
 */
export function nativeKey(name: string, labels: ReadonlyArray<readonly [string, string]>): string {
  let key = name;
  for (const [n, v] of labels) key += `\u0000${n}=${v}`;
  return key;
}

type Kind = keyof typeof METRIC_TYPE;

interface Family {
  msg: MetricFamilyMessage;
  kind: Kind;
  /** Histogram and summary series, by their labels without le/quantile. */
  series: Map<string, MetricMessage>;
}

/**
 * Parses exposition text (the Prometheus text format, as prom-client and exposition-text.ts write it). With a
 * slicer it yields to the event loop between lines (see Slicer): 10,000 queues are ~500,000 lines.
 */
export async function parseTextSliced(text: string, native: ReadonlyMap<string, NativeBuckets>, slicer: Slicer): Promise<MetricFamilyMessage[]> {
  return parseLines(text, native, slicer);
}

/** parseTextSliced without yielding, for small texts (prom-client's registries). */
export function parseText(text: string, native: ReadonlyMap<string, NativeBuckets> = new Map()): MetricFamilyMessage[] {
  const out = parseLines(text, native, undefined);
  if (out instanceof Promise) throw new Error('unreachable: no slicer, no yield');
  return out;
}

function parseLines(
  text: string,
  native: ReadonlyMap<string, NativeBuckets>,
  slicer: Slicer | undefined,
): MetricFamilyMessage[] | Promise<MetricFamilyMessage[]> {
  const state = newParse(native);
  if (slicer === undefined) {
    for (const line of text.split('\n')) parseLine(state, line);
    return state.families.map((f) => f.msg);
  }
  return (async () => {
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      parseLine(state, text.slice(start, end));
      start = end + 1;
      if (slicer.due()) await slicer.yield();
    }
    return state.families.map((f) => f.msg);
  })();
}

interface ParseState {
  families: Family[];
  byName: Map<string, Family>;
  current: Family | undefined;
  native: ReadonlyMap<string, NativeBuckets>;
}

function newParse(native: ReadonlyMap<string, NativeBuckets>): ParseState {
  return { families: [], byName: new Map(), current: undefined, native };
}

function parseLine(st: ParseState, line: string): void {
  const family = (name: string): Family => {
    let f = st.byName.get(name);
    if (!f) {
      f = { msg: { name, help: '', type: METRIC_TYPE.untyped, metric: [] }, kind: 'untyped', series: new Map() };
      st.byName.set(name, f);
      st.families.push(f);
    }
    return f;
  };
  if (line === '') return;
  if (line.startsWith('#')) {
    const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (!m) return;
    const f = family(m[2]!);
    if (m[1] === 'HELP') f.msg.help = unescapeHelp(m[3]!);
    else if (m[3]! in METRIC_TYPE) {
      f.kind = m[3] as Kind;
      f.msg.type = METRIC_TYPE[f.kind];
    }
    st.current = f;
    return;
  }
  const { name, labels, value } = parseSample(line);
  const f = st.current && belongs(st.current, name) ? st.current : family(name);
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
          st.native.get(
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

/** Length-delimited MetricFamily messages, the body of the protobuf exposition. */
export function encodeFamilies(families: readonly MetricFamilyMessage[]): Buffer {
  return Buffer.concat(families.map((f) => MetricFamily.encodeDelimited(f as unknown as Record<string, unknown>).finish()));
}

/**
 * encodeFamilies in slices: each Metric is encoded on its own and appended as field 4 of its family (what the
 * encoder of the whole family would write), so a family of 70,000 series does not hold the event loop.
 */
export async function encodeFamiliesSliced(families: readonly MetricFamilyMessage[], slicer: Slicer): Promise<Buffer> {
  const out: Uint8Array[] = [];
  for (const f of families) {
    const parts: Uint8Array[] = [MetricFamily.encode({ name: f.name, help: f.help, type: f.type }).finish()];
    for (const m of f.metric) {
      const bytes = Metric.encode(m as unknown as Record<string, unknown>).finish();
      parts.push(protobuf.Writer.create().uint32(METRIC_FIELD_TAG).uint32(bytes.length).finish(), bytes);
      if (slicer.due()) await slicer.yield();
    }
    const body = Buffer.concat(parts);
    out.push(protobuf.Writer.create().uint32(body.length).finish(), body);
  }
  return Buffer.concat(out);
}

function belongs(f: Family, sample: string): boolean {
  if (sample === f.msg.name) return true;
  if (f.kind !== 'histogram' && f.kind !== 'summary') return false;
  const suffix = sample.slice(f.msg.name.length);
  return sample.startsWith(f.msg.name) && (suffix === '_sum' || suffix === '_count' || (f.kind === 'histogram' && suffix === '_bucket'));
}

/** The native fields, as the sidecar writes them (one implementation: src/metrics/exposition-protobuf.ts). */
function addNative(h: HistogramMessage, n: NativeBuckets | undefined): void {
  if (n) Object.assign(h, nativeFields(n));
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
    // Fast path: no escape before the closing quote.
    const close = line.indexOf('"', i);
    const escape = line.indexOf('\\', i);
    if (escape < 0 || escape > close) {
      labels.push({ name: label, value: line.slice(i, close) });
      i = close + 1;
      continue;
    }
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
