// Adversarial: the event reader's loss and read accounting against workloads its authors did not script.
// Ground truth: Redis's own stream counters (XINFO STREAM entries-added, length) and what was enqueued.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueueEventStats } from '../src/events/accounting.js';
import { EventReader, type EventReaderOptions } from '../src/events/event-reader.js';
import { readEventAccounting } from '../src/events/read-back.js';
import { createLogger } from '../src/log/logger.js';
import { queueKey } from '../src/redis/keys.js';
import type { QueueRef } from '../src/domain/queue-ref.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { seriesKey } from './helpers/prom-text.js';
import { testSidecar } from './helpers/sidecar.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

const log = createLogger({ level: 'silent' });
let redis: TestRedis;
let raw: Redis;
let bull: BullFixtures;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  // Small radix nodes so that `MAXLEN ~ n` really trims near n entries.
  redis = await startTestRedis({ args: ['--stream-node-max-entries', '10'] });
  raw = redis.client();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  raw?.disconnect();
  await bull?.close();
  await redis?.stop();
});

function reader(own: string, opts: Partial<EventReaderOptions> = {}): EventReader {
  const r = new EventReader({ redisUrl: redis.url, ownPrefix: own, log, leaseMs: 2000, blockMs: 100, ...opts });
  closers.push(() => r.close());
  return r;
}

async function statsOf(own: string, q: QueueRef): Promise<QueueEventStats | undefined> {
  return (await readEventAccounting(raw, own)).find((x) => x.queue.prefix === q.prefix && x.queue.name === q.name)?.stats;
}

async function streamInfo(q: QueueRef): Promise<{ added: number; length: number; first: string }> {
  const info = (await raw.call('XINFO', 'STREAM', queueKey(q, 'events'))) as unknown[];
  const f = (k: string) => info[info.indexOf(k) + 1];
  return { added: Number(f('entries-added')), length: Number(f('length')), first: String(f('recorded-first-entry-id')) };
}

function total(s: QueueEventStats, counter: string): number {
  return s.counters.filter((c) => c.counter === counter).reduce((a, c) => a + c.value, 0);
}

describe('adversary: loss accounting', () => {
  // Leader handover (or a sidecar restart) while the queue is obliterated and re-created under the same name: the
  // next reader finds the old term's cursor and `seen` in the state hash, and a stream with new entries past it.
  // Its commit computes lost = entries-added(new stream) - seen(old stream + new reads) - unread: the old stream's
  // entries are subtracted from the new stream's trimmed ones, so the loss is under-counted by what the old
  // stream had seen. Ground truth: everything the re-created stream ever held and no longer holds was trimmed
  // unread (no reader ran while it was written).
  it.skip('FINDING: a queue obliterated and re-created while no reader ran (handover/restart) under-counts r|lost by the old stream entries seen', async () => {
    const own = 'ql-adv-reborn';
    const q: QueueRef = { prefix: 'bull', name: 'reborn' };
    const before = bull.queue(q.name, { streams: { events: { maxLen: 50 } } });
    const first = reader(own);
    first.setQueues([q]);
    first.start();
    await waitFor('registered', () => statsOf(own, q));
    for (let i = 0; i < 30; i++) await before.add('j', { i });
    const oldAdded = (await streamInfo(q)).added;
    await waitFor('first reader caught up', async () => (await statsOf(own, q))?.reader.read === oldAdded);
    await first.close();

    // While no reader runs: obliterate, re-create, and write far more than the capped stream keeps.
    await before.obliterate({ force: true });
    const again = bull.queue(q.name, { streams: { events: { maxLen: 50 } } });
    for (let i = 0; i < 200; i++) await again.add('j', { i });
    const now = await streamInfo(q);
    const retainedAdds = ((await raw.xrange(queueKey(q, 'events'), '-', '+')) as Array<[string, string[]]>).filter(
      ([, f]) => f[f.indexOf('event') + 1] === 'added',
    ).length;
    const trimmedUnread = now.added - now.length;
    expect(trimmedUnread).toBeGreaterThan(oldAdded);

    const second = reader(own);
    second.setQueues([q]);
    second.start();
    const s = await waitFor('second reader caught up', async () => {
      const st = await statsOf(own, q);
      return st && st.reader.read === oldAdded + now.length && st;
    });
    // Every entry the re-created stream held is either read or lost, and every 'added' job is either counted or lost.
    expect(total(s, 'added')).toBe(30 + retainedAdds);
    expect(s.reader.lost).toBe(trimmedUnread);
  });
});

describe('adversary: paced commits under a capped stream', () => {
  // Bursts into a stream capped near 300 entries (deferral needs >= 200 retained): with commits deferred up to a
  // second, every entry the stream ever held must end up read or counted lost, exactly once, and the jobs' counters
  // must equal what was done when nothing was lost.
  it('bursts into a capped stream with a worker: read + lost equals entries-added, completed exact when nothing lost', async () => {
    const own = 'ql-adv-capped';
    const q: QueueRef = { prefix: 'bull', name: 'capped-burst' };
    const producer = bull.queue(q.name, { streams: { events: { maxLen: 300 } } });
    let done = 0;
    const worker = bull.worker(q.name, async () => undefined, { concurrency: 20 });
    worker.on('completed', () => (done += 1));
    const r = reader(own);
    r.setQueues([q]);
    r.start();
    await waitFor('registered', () => statsOf(own, q));
    let jobs = 0;
    for (let burst = 0; burst < 12; burst++) {
      await producer.addBulk(Array.from({ length: 150 }, (_, i) => ({ name: 'j', data: { burst, i } })));
      jobs += 150;
    }
    await waitFor('jobs done', () => done >= jobs, 120_000);
    const s = await waitFor(
      'reader caught up',
      async () => {
        const st = await statsOf(own, q);
        const { added } = await streamInfo(q);
        return st && st.reader.read + st.reader.lost === added && st;
      },
      120_000,
    );
    expect(s.reader.read + s.reader.lost).toBe((await streamInfo(q)).added);
    if (s.reader.lost === 0) {
      expect(total(s, 'added')).toBe(jobs);
      expect(total(s, 'completed')).toBe(jobs);
    } else {
      expect(total(s, 'added')).toBeLessThanOrEqual(jobs);
      expect(total(s, 'completed')).toBeLessThanOrEqual(jobs);
    }
    await r.close();
    // After the final (shutdown) commit, Redis holds the same.
    const after = await statsOf(own, q);
    expect(after?.reader.read).toBe(s.reader.read);
    expect(after?.reader.lost).toBe(s.reader.lost);
  });
});

describe('adversary: deleted and re-created under a running sidecar', () => {
  // The same arithmetic with the sidecar running: a queue's keys deleted and at once re-created (one transaction, so
  // no discovery pass sees it gone and the reader never stops following it) with a burst that outruns its capped
  // stream. Every entry of the old stream and of the new one must end up read or counted lost, exactly once.
  it.skip('FINDING: keys deleted and re-created with a burst into a capped stream while followed: lost falls short by the old stream entries seen', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'reborn-live' };
    const s = await testSidecar(redis.url, { ownPrefix: 'ql-adv-reborn-live', collectInterval: '0.2', discoveryInterval: '0.5' });
    try {
      await s.start();
      const before = bull.queue(q.name, { streams: { events: { maxLen: 50 } } });
      await before.add('first', {});
      const labels = { prefix: q.prefix, queue: q.name };
      await waitFor('followed', async () => (await s.scrape()).get(seriesKey('bullmq_jobs_added_total', labels)) === 1);
      for (let i = 0; i < 20; i++) await before.add('j', { i });
      const oldAdded = (await streamInfo(q)).added;
      await waitFor('old stream read', async () => (await s.scrape()).get(seriesKey('bullmq_exporter_events_read_total', labels)) === oldAdded);
      const keys = await raw.keys('bull:reborn-live:*');
      const meta = await raw.hgetall(queueKey(q, 'meta'));
      const tx = raw.multi();
      tx.del(...keys);
      tx.hset(queueKey(q, 'meta'), meta);
      for (let i = 0; i < 400; i++) tx.xadd(queueKey(q, 'events'), 'MAXLEN', '~', '50', '*', 'event', 'added', 'jobId', `n${i}`, 'name', 'j');
      await tx.exec();
      const now = await streamInfo(q);
      expect(now.added).toBe(400);
      let last = '';
      await waitFor(
        'both streams accounted for',
        async () => {
          const m = await s.scrape();
          const read = m.get(seriesKey('bullmq_exporter_events_read_total', labels)) ?? 0;
          const lost = m.get(seriesKey('bullmq_exporter_events_lost_total', labels)) ?? 0;
          last = JSON.stringify({ read, lost, oldAdded, retained: now.length });
          return read === oldAdded + now.length && lost === 400 - now.length;
        },
        20_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}: ${last}`);
      });
    } finally {
      await s.close();
    }
  }, 60_000);
});
