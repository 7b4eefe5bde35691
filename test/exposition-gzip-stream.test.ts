// The gzip of a part fed straight from its fragments (metrics/exposition-fragments.ts, BlockSink), never from its
// joined bytes: byte for byte the gzip of those bytes, in every format, across many 64 KB blocks; and over real
// HTTP the gzipped /metrics is the plain one compressed, including a scrape that arrives while a new body is written
// (it gets one complete body, the previous or the new). Ground truth: the plain bytes the same set writes, and the
// text of each published state.
import { get, type IncomingHttpHeaders } from 'node:http';
import { gunzipSync, gzipSync, constants as zlib } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { QueueAccounting } from '../src/events/accounting.js';
import { EventMetrics } from '../src/metrics/event-metrics.js';
import { FragmentSet, FragmentWriter, type FamilySpec } from '../src/metrics/exposition-fragments.js';
import { Exposition, gzipOf } from '../src/metrics/exposition.js';
import { renderLabels } from '../src/metrics/exposition-text.js';
import { serveMetrics } from './helpers/metrics-app.js';

const FAMILIES: FamilySpec[] = [
  { name: 'a_jobs', help: 'A.', type: 'gauge' },
  { name: 'b_total', help: 'B.', type: 'counter' },
];

/** 6,000 fragments of two samples each: ~400 KB of text, several blocks per format. */
function bigSet(): FragmentSet {
  const w = new FragmentWriter(FAMILIES.length);
  const fragments = Array.from({ length: 6000 }, (_, k) => {
    const q = `queue-${k}-${'x'.repeat(k % 37)}`;
    w.sample(1, FAMILIES[1]!, renderLabels(['queue'], [q]), [['queue', q]], k * 3);
    w.sample(0, FAMILIES[0]!, renderLabels(['queue'], [q]), [['queue', q]], k / 7);
    return w.finish(`fp${k}`);
  });
  return new FragmentSet(FAMILIES, fragments);
}

describe('gzip fed from fragments', () => {
  it('is byte for byte the gzip of the bytes the set writes, in text, OpenMetrics and protobuf', async () => {
    const streamed = bigSet();
    const joined = bigSet();
    for (const i of [0, 1, 2] as const) {
      const bytes = await joined.bytes(i);
      expect(bytes.length).toBeGreaterThan(3 * 64 * 1024);
      const fromFragments = await streamed.gzipped(i, gzipOf);
      // Compressed from the joined bytes (the path taken once a plain scrape has written them), and by zlib in one call.
      expect(fromFragments.equals(await joined.gzipped(i, gzipOf))).toBe(true);
      expect(fromFragments.equals(gzipSync(bytes, { level: zlib.Z_BEST_SPEED }))).toBe(true);
      expect(gunzipSync(fromFragments).equals(bytes)).toBe(true);
    }
  });
});

function scrape(port: number, gzip: boolean): Promise<{ body: Buffer; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    get({ port, host: '127.0.0.1', path: '/metrics', headers: gzip ? { 'accept-encoding': 'gzip' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ body: Buffer.concat(chunks), headers: res.headers }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** The queue series of a body (prom-client's self-metrics and the process metrics change between scrapes). */
const queueLines = (text: string) => text.split('\n').filter((l) => l.includes('queue="'));

describe('/metrics over HTTP, gzip fed from fragments', () => {
  it('serves the plain body compressed, and a scrape during a rebuild one complete body', async () => {
    const e = new Exposition(60_000);
    const m = new EventMetrics(e);
    const names = Array.from({ length: 3000 }, (_, k) => `q${k}`);
    const accounts = new Map(names.map((n) => [n, new QueueAccounting()]));
    const publish = async (added: number) => {
      for (const n of names) for (let k = 0; k < added; k += 1) accounts.get(n)!.count('added', '');
      await m.update({ leader: true, queues: names.map((name) => ({ queue: { prefix: 'bull', name }, stats: accounts.get(name)!.toStats() })) });
    };
    const { port, close } = await serveMetrics(e);
    try {
      await publish(1);
      const zipped = await scrape(port, true);
      expect(zipped.headers['content-encoding']).toBe('gzip');
      expect(Number(zipped.headers['content-length'])).toBe(zipped.body.length);
      const plain = await scrape(port, false);
      expect(plain.headers['content-encoding']).toBeUndefined();
      const first = queueLines(plain.body.toString());
      expect(first.filter((l) => l.startsWith('bullmq_jobs_added_total{'))).toHaveLength(names.length);
      expect(queueLines(gunzipSync(zipped.body).toString())).toEqual(first);

      // Only gzip from here on: a new state is published while scrapes come; each gets one whole state.
      const during = Array.from({ length: 5 }, () => scrape(port, true));
      const publishing = publish(2);
      during.push(scrape(port, true));
      await publishing;
      during.push(scrape(port, true));
      const expected = [first, first.map((l) => (l.startsWith('bullmq_jobs_added_total{') ? l.replace(/ 1$/, ' 3') : l))];
      const bodies = await Promise.all(during);
      for (const b of bodies) {
        const lines = queueLines(gunzipSync(b.body).toString());
        expect(expected.some((x) => x.join('\n') === lines.join('\n'))).toBe(true);
      }
      expect(queueLines(gunzipSync(bodies.at(-1)!.body).toString())).toEqual(expected[1]);
      expect(queueLines((await scrape(port, false)).body.toString())).toEqual(expected[1]);
    } finally {
      await close();
    }
  });
});
