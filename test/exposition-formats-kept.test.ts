// Which formats' bodies the exposition keeps (metrics/exposition.ts): only those scraped lately are written at each
// change; a format let go comes back, at its next scrape, complete and equal in series to what was published.
// Ground truth: the accounting published (what was counted), and the text and protobuf of the same values.
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { QueueAccounting } from '../src/events/accounting.js';
import { MetricFamily } from '../src/metrics/client-model.js';
import { EventMetrics } from '../src/metrics/event-metrics.js';
import { Exposition } from '../src/metrics/exposition.js';
import { parsePromText, seriesKey } from './helpers/prom-text.js';

const QUEUES = ['a', 'b "c"', 'd'];

/** Each protobuf counter as the text's series key -> value. */
function protobufCounters(body: Buffer): Map<string, number> {
  const r = protobuf.Reader.create(body);
  const out = new Map<string, number>();
  while (r.pos < r.len) {
    const f = MetricFamily.toObject(MetricFamily.decodeDelimited(r), { longs: Number, arrays: true }) as {
      name: string;
      metric: Array<{ label: Array<{ name: string; value: string }>; counter?: { value: number } }>;
    };
    for (const m of f.metric) if (m.counter) out.set(seriesKey(f.name, Object.fromEntries(m.label.map((l) => [l.name, l.value]))), m.counter.value);
  }
  return out;
}

/** Publishes `added` jobs counted on every queue; returns the counts published. */
async function publish(m: EventMetrics, accounts: Map<string, QueueAccounting>, added: number): Promise<void> {
  for (const name of QUEUES) for (let k = 0; k < added; k += 1) accounts.get(name)!.count('added', '');
  await m.update({ leader: true, queues: QUEUES.map((name) => ({ queue: { prefix: 'bull', name }, stats: accounts.get(name)!.toStats() })) });
}

async function scrapeAll(e: Exposition): Promise<{ text: Map<string, number>; gzip: string; plain: string; proto: Map<string, number> }> {
  // Protobuf first: its first scrape has the parts rendered again with their protobuf (a publish), which with a
  // keep time of 0 lets go of the formats scraped before it.
  const proto = protobufCounters((await e.render('protobuf')).body);
  const plain = (await e.render('text')).body.toString();
  const gzip = gunzipSync((await e.render('text', true)).body).toString();
  return { text: parsePromText(plain), plain, gzip, proto };
}

describe('formats kept', () => {
  it('lets go of the bodies of formats not scraped lately, and builds them again complete and equal in series', async () => {
    for (const keepMs of [0, 60 * 60_000]) {
      const e = new Exposition(1000, keepMs);
      const m = new EventMetrics(e);
      const accounts = new Map(QUEUES.map((q) => [q, new QueueAccounting()]));
      await publish(m, accounts, 2);
      await scrapeAll(e);
      expect(e.keptFormats()).toEqual(['text', 'protobuf']);

      // A change: with keepMs 0 no format was scraped lately enough, so neither body is written nor kept.
      await publish(m, accounts, 3);
      expect(e.keptFormats()).toEqual(keepMs === 0 ? [] : ['text', 'protobuf']);

      const got = await scrapeAll(e);
      for (const name of QUEUES) {
        const key = seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: name });
        expect([got.text.get(key), got.proto.get(key)]).toEqual([5, 5]);
      }
      // Every queue counter of the protobuf is in the text with its value, and the gzip's queue series are the
      // plain body's (the process metrics move between renders).
      const queueSeries = [...got.proto].filter(([key]) => key.startsWith('bullmq_'));
      expect(queueSeries.length).toBeGreaterThan(QUEUES.length);
      for (const [key, value] of queueSeries) expect(got.text.get(key), key).toBe(value);
      const bullmqLines = (body: string) => body.split('\n').filter((l) => l.includes('bullmq_'));
      expect(bullmqLines(got.gzip)).toEqual(bullmqLines(got.plain));
    }
  });
});
