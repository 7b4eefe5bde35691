// The protobuf exposition on its own: which Accept header gets it, that it carries what the text carries (hostile
// label values included), and that the native buckets decode to the observations made (bucket by bucket).
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { QueueAccounting } from '../src/events/accounting.js';
import { nativeBucketIndex, nativeBucketUpper } from '../src/events/buckets.js';
import { negotiateFormat } from '../src/http/app.js';
import { MetricFamily } from '../src/metrics/client-model.js';
import { EventMetrics } from '../src/metrics/event-metrics.js';
import { Exposition } from '../src/metrics/exposition.js';
import { parsePromText, seriesKey } from './helpers/prom-text.js';

interface Decoded {
  name: string;
  metric: Array<{
    label: Array<{ name: string; value: string }>;
    counter?: { value: number };
    histogram?: {
      schema?: number;
      zeroCount?: number;
      sampleCount: number;
      positiveSpan?: Array<{ offset?: number; length: number }>;
      positiveDelta?: number[];
    };
  }>;
}

function decode(body: Buffer): Decoded[] {
  const r = protobuf.Reader.create(body);
  const out: Decoded[] = [];
  while (r.pos < r.len) out.push(MetricFamily.toObject(MetricFamily.decodeDelimited(r), { longs: Number, arrays: true }) as Decoded);
  return out;
}

/** Native buckets back into index -> count (spans and deltas as Prometheus reads them). */
function nativeCounts(h: NonNullable<Decoded['metric'][number]['histogram']>): Map<number, number> {
  const out = new Map<number, number>();
  let index = 0;
  let count = 0;
  let d = 0;
  for (const span of h.positiveSpan ?? []) {
    index += span.offset ?? 0;
    for (let i = 0; i < span.length; i += 1) {
      count += h.positiveDelta![d]!;
      d += 1;
      out.set(index, count);
      index += 1;
    }
  }
  return out;
}

describe('protobuf exposition', () => {
  it('is what a Prometheus with native histograms asks for; the text formats otherwise', () => {
    // Prometheus 2.42 with --enable-feature=native-histograms, and without.
    expect(
      negotiateFormat(
        'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
      ),
    ).toBe('protobuf');
    expect(
      negotiateFormat('application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'),
    ).toBe('openmetrics');
    expect(
      negotiateFormat('text/plain;version=0.0.4;q=1,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5'),
    ).toBe('text');
    // Not the delimited MetricFamily stream: not ours to guess.
    expect(negotiateFormat('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text')).toBe('text');
    expect(negotiateFormat('')).toBe('text');
    expect(negotiateFormat('application/json')).toBe('text');
  });

  it('carries the same samples as the text, hostile label values included, and native buckets equal to the observations', async () => {
    const e = new Exposition();
    const m = new EventMetrics(e);
    const acc = new QueueAccounting();
    acc.count('added', '');
    acc.count('completed', '');
    // Ground truth: 0 ms (the zero bucket), 1 ms, 250 ms twice, 30 s, and a retry wait of 2 s.
    for (const ms of [0, 1, 250, 250, 30_000]) acc.observe('wait', 'first', '', ms);
    acc.observe('wait', 'retry', '', 2000);
    const weird = 'q "\\ \n ü';
    await m.update({ leader: true, queues: [{ queue: { prefix: 'bull', name: weird }, stats: acc.toStats() }] });
    const text = parsePromText((await e.render('text')).body.toString());
    const r = await e.render('protobuf');
    expect(r.contentType).toBe('application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited');
    const families = decode(r.body);

    const added = families.find((f) => f.name === 'bullmq_jobs_added_total')!.metric[0]!;
    expect(added.label).toEqual([
      { name: 'prefix', value: 'bull' },
      { name: 'queue', value: weird },
    ]);
    expect(added.counter!.value).toBe(text.get(seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: weird })));

    const wait = families.find((f) => f.name === 'bullmq_job_wait_seconds')!.metric[0]!.histogram!;
    expect(wait.schema).toBe(2);
    expect(wait.sampleCount).toBe(6);
    expect(wait.zeroCount).toBe(1);
    const expected = new Map<number, number>();
    for (const s of [0.001, 0.25, 0.25, 30, 2]) expected.set(nativeBucketIndex(s), (expected.get(nativeBucketIndex(s)) ?? 0) + 1);
    expect(nativeCounts(wait)).toEqual(expected);
    // Each observation lies in its bucket: (upper(i-1), upper(i)].
    for (const s of [0.001, 0.25, 30, 2]) {
      const i = nativeBucketIndex(s);
      expect(s).toBeGreaterThan(nativeBucketUpper(i - 1));
      expect(s).toBeLessThanOrEqual(nativeBucketUpper(i));
    }
    // An empty histogram is still native: a no-op span, a zero threshold above 0.
    const e2e = families.find((f) => f.name === 'bullmq_job_e2e_seconds')!.metric[0]!.histogram!;
    expect(e2e.sampleCount).toBe(0);
    expect(e2e.positiveSpan).toEqual([{ offset: 0, length: 0 }]);
  });
});
