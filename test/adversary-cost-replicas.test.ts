// Adversarial: 150 queues (two XREAD groups of the event reader), a fifth of them with hostile names, two sidecars
// sharing one own prefix (leader and replica). Every queue's added counter and waiting gauge equal what was
// enqueued, in text and protobuf, on both; then one quiet queue among them gets one more job, and both show it.
// Ground truth: what was enqueued.
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricFamily } from '../src/metrics/client-model.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { parsePromText, seriesKey, type Series } from './helpers/prom-text.js';
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
const HOSTILE = ['q"uote', 'back\\slash', 'new\nline', 'ü队列🚀', '{brace}=,', ' space ', 'le="1"', '%41%', 'tab\there', 'x'.repeat(200)];

const wanted = (k: string) => k.startsWith('bullmq_jobs_added_total') || k.startsWith('bullmq_queue_jobs{');

async function both(s: Sidecar): Promise<[Series, Series]> {
  const text: Series = new Map([...parsePromText((await s.app.inject({ url: '/metrics' })).body)].filter(([k]) => wanted(k)));
  const proto: Series = new Map();
  const r = protobuf.Reader.create((await s.app.inject({ url: '/metrics', headers: { accept: PROTOBUF } })).rawPayload);
  while (r.pos < r.len) {
    const f = MetricFamily.toObject(MetricFamily.decodeDelimited(r), { longs: Number, arrays: true, defaults: true }) as {
      name: string;
      metric: Array<{ label: Array<{ name: string; value: string }>; gauge?: { value: number }; counter?: { value: number } }>;
    };
    for (const m of f.metric) {
      const key = seriesKey(f.name, Object.fromEntries(m.label.map((l) => [l.name, l.value])));
      if (wanted(key)) proto.set(key, (m.gauge ?? m.counter)!.value);
    }
  }
  return [text, proto];
}

describe('adversary: many queues, hostile names, two replicas', () => {
  it('150 queues over two read groups: added and waiting exact per queue in text and protobuf of leader and replica; a quiet one gets one job', async () => {
    const names = Array.from({ length: 150 }, (_, i) => (i < 30 ? `${HOSTILE[i % HOSTILE.length]}-${i}` : `plain-${i}`));
    const raw = { ownPrefix: 'ql-adv-many', collectInterval: '0.5', discoveryInterval: '0.5' };
    const a = await testSidecar(redis.url, raw);
    await a.start();
    await waitFor('a leads', async () => (await a.scrape()).get('bullmq_exporter_leader') === 1, 30_000);
    const b = await testSidecar(redis.url, raw);
    await b.start();
    try {
      // Each queue is created with its first job (followed from its first entry: new to a watched prefix).
      const expected = new Map<string, number>();
      for (const [i, name] of names.entries()) {
        const n = (i % 3) + 1;
        await bull.queue(name).addBulk(Array.from({ length: n }, () => ({ name: 'j', data: {} })));
        expected.set(name, n);
      }
      const check = async (s: Sidecar) => {
        const [text, proto] = await both(s);
        if (JSON.stringify([...text].sort()) !== JSON.stringify([...proto].sort())) return false;
        for (const [name, n] of expected) {
          if (text.get(seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: name })) !== n) return false;
          if (text.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: name, state: 'waiting' })) !== n) return false;
        }
        return true;
      };
      await waitFor('leader exact', () => check(a), 120_000, 250);
      await waitFor('replica exact', () => check(b), 120_000, 250);
      const quiet = names[137]!;
      const hostileQuiet = names[12]!;
      await bull.queue(quiet).add('late', {});
      await bull.queue(hostileQuiet).add('late', {});
      expected.set(quiet, expected.get(quiet)! + 1);
      expected.set(hostileQuiet, expected.get(hostileQuiet)! + 1);
      await waitFor('leader exact after the late jobs', () => check(a), 120_000, 250);
      await waitFor('replica exact after the late jobs', () => check(b), 120_000, 250);
      const [ta] = await both(a);
      const [tb] = await both(b);
      expect(tb).toEqual(ta);
    } finally {
      await b.close();
      await a.close();
    }
  }, 300_000);
});
