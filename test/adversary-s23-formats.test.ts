// Adversarial (session 23): formats let go (metrics/exposition.ts, a keep of 0: no format counts as scraped lately),
// asked for again by many scrapes at once while the values keep changing. Each change counts the same number of adds
// on every queue (one update), so a body that mixed two changes would show queues with different counts. Every body
// of every format (text, OpenMetrics, protobuf, plain and gzipped) must be whole and from one change: every queue at
// the same count, a count that was published, never lower than one an earlier finished scrape saw.
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { QueueAccounting } from '../src/events/accounting.js';
import { EventMetrics } from '../src/metrics/event-metrics.js';
import { Exposition } from '../src/metrics/exposition.js';
import { parsePromText, seriesKey } from './helpers/prom-text.js';
import { protobufSeries } from './helpers/protobuf-series.js';

const QUEUES = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? `очередь-${i}` : i % 3 === 1 ? `q"${i}\\x` : `plain-${i}`));
const key = (name: string) => seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: name });

type Format = 'text' | 'openmetrics' | 'protobuf';

describe('adversary s23: formats let go, asked for again all at once while values change', () => {
  it('every body whole and from one change, counts never going back', async () => {
    const e = new Exposition(1000, 0);
    const m = new EventMetrics(e);
    const accounts = new Map(QUEUES.map((q) => [q, new QueueAccounting()]));
    let published = 0;
    const publish = async () => {
      for (const name of QUEUES) accounts.get(name)!.count('added', '');
      published += 1;
      await m.update({ leader: true, queues: QUEUES.map((name) => ({ queue: { prefix: 'bull', name }, stats: accounts.get(name)!.toStats() })) });
    };
    await publish();
    let changing = true;
    const changes = (async () => {
      while (changing) {
        await publish();
        await new Promise((r) => setImmediate(r));
      }
    })();
    const formats: Array<[Format, boolean]> = [
      ['text', false],
      ['text', true],
      ['openmetrics', false],
      ['openmetrics', true],
      ['protobuf', false],
      ['protobuf', true],
    ];
    let bodies = 0;
    let floor = 0;
    try {
      for (let round = 0; round < 20; round++) {
        const startedAfter = floor;
        const got = await Promise.all(
          Array.from({ length: 30 }, async (_, k) => {
            const [f, gz] = formats[k % formats.length]!;
            const r = await e.render(f, gz);
            expect(r.length).toBe(r.body.length);
            const body = gz ? gunzipSync(r.body) : r.body;
            const counts = f === 'protobuf' ? protobufSeries(body) : parsePromText(body.toString('utf8'));
            if (f === 'openmetrics') expect(body.toString('utf8').endsWith('# EOF\n')).toBe(true);
            const values = QUEUES.map((q) => counts.get(key(q)));
            // One change per body: every queue at the same count, one that was published.
            expect(new Set(values).size, `${f} gzip=${gz}: ${[...new Set(values)].join(',')}`).toBe(1);
            const v = values[0]!;
            expect(v).toBeGreaterThanOrEqual(1);
            expect(v).toBeLessThanOrEqual(published);
            // Never older than what a scrape that finished before this one began saw.
            expect(v).toBeGreaterThanOrEqual(startedAfter);
            return v;
          }),
        );
        bodies += got.length;
        floor = Math.max(floor, ...got);
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      changing = false;
      await changes;
    }
    expect(bodies).toBe(600);
    expect(published).toBeGreaterThan(20);
  });
});
