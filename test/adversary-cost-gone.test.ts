// Adversarial: discovery on evidence (collector/discovery.ts) and per-queue fragments (metrics/exposition-fragments.ts)
// when queues go away. An obliterated queue leaves every series (gauges and event counters) in text and protobuf
// and /api/queues; a Redis restarted empty while the sidecar is idle takes every queue with it, and a queue created
// after the restart is found and counted exactly. Ground truth: what was enqueued and what Redis holds.
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricFamily } from '../src/metrics/client-model.js';
import type { QueuesResponse } from '../src/status/queue-view.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { parsePromText, seriesKey } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

const PROTOBUF = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';
let redis: TestRedis;
let bull: BullFixtures;
beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  await bull?.close();
  await redis?.stop();
});

type Sidecar = Awaited<ReturnType<typeof testSidecar>>;

/** The queue names any bullmq_ series of the text, the protobuf, and /api/queues carries. */
async function namesEverywhere(s: Sidecar): Promise<{ text: string[]; proto: string[]; api: string[] }> {
  const text = new Set<string>();
  for (const k of parsePromText((await s.app.inject({ url: '/metrics' })).body).keys()) {
    const m = /[{,]queue="([^"]*)"/.exec(k);
    if (k.startsWith('bullmq_') && m) text.add(m[1]!);
  }
  const proto = new Set<string>();
  const r = protobuf.Reader.create((await s.app.inject({ url: '/metrics', headers: { accept: PROTOBUF } })).rawPayload);
  while (r.pos < r.len) {
    const f = MetricFamily.toObject(MetricFamily.decodeDelimited(r), { arrays: true, defaults: true }) as {
      name: string;
      metric: Array<{ label: Array<{ name: string; value: string }> }>;
    };
    if (!f.name.startsWith('bullmq_')) continue;
    for (const m of f.metric) for (const l of m.label) if (l.name === 'queue') proto.add(l.value);
  }
  const api = (JSON.parse((await s.app.inject({ url: '/api/queues' })).body) as QueuesResponse).queues.map((q) => q.name);
  return { text: [...text].sort(), proto: [...proto].sort(), api: [...api].sort() };
}

describe('adversary: queues going away under change-driven collection', () => {
  it('obliterate drops every series of the queue; a Redis restarted empty while idle drops all, and a queue born after it is counted exactly', async () => {
    await bull.queue('stays').add('a', {});
    const gone = bull.queue('gone');
    await gone.addBulk([
      { name: 'a', data: {} },
      { name: 'b', data: {} },
    ]);
    const s = await testSidecar(redis.url, { ownPrefix: 'ql-adv-gone', collectInterval: '0.2', discoveryInterval: '0.5' });
    try {
      await s.start();
      const both = { text: ['gone', 'stays'], proto: ['gone', 'stays'], api: ['gone', 'stays'] };
      await waitFor('both queues everywhere, followed by the reader', async () => {
        const m = await s.scrape();
        return (
          JSON.stringify(await namesEverywhere(s)) === JSON.stringify(both) &&
          m.has(seriesKey('bullmq_exporter_events_lag_seconds', { prefix: 'bull', queue: 'gone' })) &&
          m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'gone', state: 'waiting' })) === 2
        );
      });

      await gone.obliterate({ force: true });
      const one = { text: ['stays'], proto: ['stays'], api: ['stays'] };
      let last = {};
      await waitFor('the obliterated queue gone from text, protobuf and /api/queues', async () => {
        last = await namesEverywhere(s);
        return JSON.stringify(last) === JSON.stringify(one);
      }).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(last)}`);
      });

      // Idle, then Redis comes back empty (no persistence in the test server).
      const seq = s.snapshot()?.seq ?? 0;
      await waitFor('collections at rest', () => (s.snapshot()?.seq ?? 0) >= seq + 3);
      await redis.kill();
      await redis.restart();
      const none = { text: [], proto: [], api: [] };
      await waitFor(
        'every queue gone after the empty restart',
        async () => {
          last = await namesEverywhere(s);
          return JSON.stringify(last) === JSON.stringify(none);
        },
        60_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(last)}`);
      });
      const born = bull.queue('born');
      await born.addBulk([0, 1, 2].map((i) => ({ name: 'x', data: { i } })));
      await waitFor(
        'the queue born after the restart found and counted',
        async () => {
          const m = await s.scrape();
          return (
            m.get(seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: 'born' })) === 3 &&
            m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'born', state: 'waiting' })) === 3
          );
        },
        60_000,
      );
      expect(await namesEverywhere(s)).toEqual({ text: ['born'], proto: ['born'], api: ['born'] });
    } finally {
      await s.close();
    }
  }, 180_000);
});
