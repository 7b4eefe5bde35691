// The protobuf exposition (Content-Type application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
// encoding=delimited): what a Prometheus with native histograms enabled asks for. It is encoded straight from the
// values (exposition-fragments.ts: the queue gauges, the event accounting, prom-client's registries), in the same
// call that writes the text, so both carry the same families, names, labels and values. The latency histograms get
// their native (exponential) buckets from the accounting, which keeps them exactly. They keep their classic buckets
// too: a Prometheus that negotiates protobuf but does not ingest native histograms (or keeps both,
// scrape_classic_histograms) reads those, and one that ingests native ones ignores them. prom-client has no
// protobuf support; protobufjs encodes.
import type { HistogramMessage } from './client-model.js';

export const PROTOBUF_CONTENT_TYPE = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';

/** The native buckets of one histogram series: count per bucket index of `schema`, and the zero bucket. */
export interface NativeBuckets {
  schema: number;
  zeroThreshold: number;
  zeroCount: number;
  buckets: ReadonlyMap<number, number>;
}

/** The native fields of a Histogram message: spans and deltas of the populated buckets; a no-op span when there are none. */
export function nativeFields(n: NativeBuckets): Pick<HistogramMessage, 'schema' | 'zeroThreshold' | 'zeroCount' | 'positiveSpan' | 'positiveDelta'> {
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
  return {
    schema: n.schema,
    zeroThreshold: n.zeroThreshold,
    zeroCount: n.zeroCount,
    positiveSpan: spans.length > 0 ? spans : [{ offset: 0, length: 0 }],
    positiveDelta: deltas,
  };
}
