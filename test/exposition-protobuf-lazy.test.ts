// The protobuf is rendered only while protobuf is scraped (metrics/exposition.ts, protobufWanted()): a Prometheus
// without native histograms asks for text with gzip, and the protobuf bytes of every queue's fragment were ~8 MB
// at 10,000 queues. The first protobuf scrape after a text-only period has the parts rendered again and gets a
// complete body: checked over real HTTP, decoded, series by series against the text body of the same values.
import { get } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { CollectionSnapshot, QueueState } from '../src/domain/queue-snapshot.js';
import { QueueAccounting } from '../src/events/accounting.js';
import { EventMetrics } from '../src/metrics/event-metrics.js';
import { Exposition } from '../src/metrics/exposition.js';
import { PROTOBUF_CONTENT_TYPE } from '../src/metrics/exposition-protobuf.js';
import { QueueMetrics } from '../src/metrics/queue-metrics.js';
import { parsePromText } from './helpers/prom-text.js';
import { protobufSeries } from './helpers/protobuf-series.js';
import { serveMetrics } from './helpers/metrics-app.js';

const PROTOBUF_ACCEPT = `${PROTOBUF_CONTENT_TYPE},text/plain;version=0.0.4;q=0.5`;

function scrape(port: number, accept: string): Promise<{ type: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics', headers: { accept, 'accept-encoding': 'gzip' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        resolve({ type: String(res.headers['content-type']), body: res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw });
      });
    }).on('error', reject);
  });
}

function queue(name: string, i: number): QueueState {
  return {
    ref: { prefix: 'bull', name },
    jobs: { waiting: i, prioritized: 0, delayed: i + 2, active: i % 3, waiting_children: 0, completed: i + 5, failed: i % 2 },
    paused: false,
    oldestWaitingAgeSeconds: i + 0.25,
    delayedOverdue: 0,
    oldestActiveAgeSeconds: i + 0.5,
    orphanedActive: 0,
    workers: 1,
    rateLimited: false,
  };
}

function snapshot(seq: number, queues: QueueState[]): CollectionSnapshot {
  return {
    seq,
    ok: true,
    finishedAt: 1,
    durationSeconds: 0.5,
    lastSuccessAt: 1000,
    redisUp: true,
    queues,
    queuesByPrefix: { bull: queues.length },
    queuesDropped: 0,
  };
}

/** The queue series of a body (the exporter's own and the process metrics move between scrapes). */
const queueSeries = (s: Map<string, number>) => new Map([...s].filter(([key]) => key.includes('queue="')));

describe('protobuf rendered only while scraped', () => {
  it('holds no protobuf through a text-only period; the first protobuf scrape gets the complete body of the same values', async () => {
    const e = new Exposition(60_000);
    const gauges = new QueueMetrics(e);
    const events = new EventMetrics(e);
    const names = Array.from({ length: 200 }, (_, k) => (k === 7 ? 'we"ird\\q' : `q${k}`));
    const accounts = new Map(names.map((n) => [n, new QueueAccounting()]));
    for (const [k, n] of names.entries()) {
      const a = accounts.get(n)!;
      for (let j = 0; j <= k % 5; j += 1) a.count('added', j % 2 === 0 ? '' : 'send');
      if (k % 4 === 0) a.count('completed', '');
    }
    const { port, close } = await serveMetrics(e);
    try {
      // A text-only period of three collections.
      for (let seq = 1; seq <= 3; seq += 1) {
        await gauges.update(
          snapshot(
            seq,
            names.map((n, i) => queue(n, i + seq)),
          ),
        );
        await events.update({ leader: true, queues: names.map((name) => ({ queue: { prefix: 'bull', name }, stats: accounts.get(name)!.toStats() })) });
        expect((await scrape(port, 'text/plain;version=0.0.4')).type).toContain('text/plain');
      }
      expect(e.partsWithProtobuf).toBe(false);
      const text = queueSeries(parsePromText((await scrape(port, 'text/plain;version=0.0.4')).body.toString()));
      expect(text.size).toBeGreaterThan(names.length * 20);

      // No new collection: the scrape alone has the parts rendered again, with their protobuf.
      const proto = await scrape(port, PROTOBUF_ACCEPT);
      expect(proto.type).toContain('application/vnd.google.protobuf');
      expect(queueSeries(protobufSeries(proto.body))).toEqual(text);
      expect(e.partsWithProtobuf).toBe(true);

      // Kept while protobuf is scraped: the next collection renders it with the protobuf too.
      await gauges.update(
        snapshot(
          4,
          names.map((n, i) => queue(n, i + 4)),
        ),
      );
      expect(e.partsWithProtobuf).toBe(true);
      const [p2, t2] = [await scrape(port, PROTOBUF_ACCEPT), await scrape(port, 'text/plain;version=0.0.4')];
      expect(queueSeries(protobufSeries(p2.body))).toEqual(queueSeries(parsePromText(t2.body.toString())));
    } finally {
      await close();
    }
  });

  it('renders the protobuf again without bringing back a lease that lapsed since the last update', async () => {
    const e = new Exposition(60_000);
    const events = new EventMetrics(e);
    const a = new QueueAccounting();
    a.count('added', '');
    await events.update({ leader: true, queues: [{ queue: { prefix: 'bull', name: 'q' }, stats: a.toStats() }] });
    events.setLeader(false);
    const series = protobufSeries((await e.render('protobuf')).body);
    expect(series.get('bullmq_exporter_leader')).toBe(0);
    expect(e.partsWithProtobuf).toBe(true);
  });

  it('drops the protobuf again once it is not scraped for the keep time', async () => {
    const e = new Exposition(1000, 0);
    const events = new EventMetrics(e);
    const a = new QueueAccounting();
    a.count('added', '');
    const view = { leader: true, queues: [{ queue: { prefix: 'bull', name: 'q' }, stats: a.toStats() }] };
    await events.update(view);
    expect(e.partsWithProtobuf).toBe(false);
    const body = (await e.render('protobuf')).body;
    expect(protobufSeries(body).size).toBeGreaterThan(0);
    // Keep time 0: no protobuf scrape counts as recent, so the next render leaves the protobuf out again.
    a.count('added', '');
    await events.update({ ...view, queues: [{ ...view.queues[0]!, stats: a.toStats() }] });
    expect(e.partsWithProtobuf).toBe(false);
  });
});
