// A delimited protobuf exposition (io.prometheus.client.MetricFamily) as the text format's series map, so a test
// can hold a protobuf body against a text one key by key: histograms as their _bucket/_sum/_count series.
import protobuf from 'protobufjs';
import { MetricFamily } from '../../src/metrics/client-model.js';
import { seriesKey, type Series } from './prom-text.js';

interface Decoded {
  name: string;
  metric: Array<{
    label: Array<{ name: string; value: string }>;
    gauge?: { value: number };
    counter?: { value: number };
    untyped?: { value: number };
    histogram?: { sampleCount: number; sampleSum: number; bucket: Array<{ cumulativeCount: number; upperBound: number }> };
  }>;
}

/** Every sample of the body; a series twice in it throws (a body must name each once). */
export function protobufSeries(body: Buffer): Series {
  const r = protobuf.Reader.create(body);
  const out: Series = new Map();
  const put = (key: string, v: number) => {
    if (out.has(key)) throw new Error(`${key} twice in the protobuf`);
    out.set(key, v);
  };
  while (r.pos < r.len) {
    const f = MetricFamily.toObject(MetricFamily.decodeDelimited(r), { longs: Number, arrays: true, defaults: true }) as Decoded;
    for (const m of f.metric) {
      const labels = Object.fromEntries(m.label.map((l) => [l.name, l.value]));
      if (m.histogram) {
        const h = m.histogram;
        for (const b of h.bucket)
          put(seriesKey(`${f.name}_bucket`, { ...labels, le: b.upperBound === Infinity ? '+Inf' : String(b.upperBound) }), b.cumulativeCount);
        put(seriesKey(`${f.name}_sum`, labels), h.sampleSum);
        put(seriesKey(`${f.name}_count`, labels), h.sampleCount);
      } else put(seriesKey(f.name, labels), (m.gauge ?? m.counter ?? m.untyped)!.value);
    }
  }
  return out;
}
