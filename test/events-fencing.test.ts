// The fencing counter of the event reader (ownKeys.eventsGeneration) can be lost (evicted under maxmemory,
// deleted) while every queue's event state keeps the generation of its last term. A new leader then draws a
// number below the stored one: it must recover at once, without counting anything twice.
import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueueEventStats } from '../src/events/accounting.js';
import { EventReader } from '../src/events/event-reader.js';
import { readEventAccounting } from '../src/events/read-back.js';
import { createLogger } from '../src/log/logger.js';
import { ownKeys, queueKey } from '../src/redis/keys.js';
import { type QueueRef } from '../src/domain/queue-ref.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

const OWN = 'ql-lostgen';
let redis: TestRedis;
let raw: Redis;
let bull: BullFixtures;

beforeAll(async () => {
  redis = await startTestRedis();
  raw = redis.client();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  await bull?.close();
  await redis?.stop();
});

const total = (s: QueueEventStats | undefined, counter: string) => (s?.counters ?? []).filter((c) => c.counter === counter).reduce((a, c) => a + c.value, 0);

describe('a lost fencing counter', () => {
  it('a new leader whose number is below the stored generation takes a higher one at once and counts every job once', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'lostgen' };
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
    // A long lease: on main every refused number costs a lease term, and 49 of them would take minutes.
    const reader = () => new EventReader({ redisUrl: redis.url, ownPrefix: OWN, log, leaseMs: 10_000, blockMs: 100 });
    const stats = async () => (await readEventAccounting(raw, OWN)).find((x) => x.queue.name === q.name)?.stats;
    const entriesAdded = async () => {
      const info = (await raw.call('XINFO', 'STREAM', queueKey(q, 'events'))) as unknown[];
      return Number(info[info.indexOf('entries-added') + 1]);
    };

    const producer = bull.queue(q.name);
    let done = 0;
    const worker = bull.worker(q.name, async () => undefined, { concurrency: 5 });
    worker.on('completed', () => (done += 1));
    const batch = async (n: number) => {
      const target = done + n;
      await producer.addBulk(Array.from({ length: n }, () => ({ name: 'j', data: {} })));
      await waitFor('the batch to complete', async () => done >= target);
    };

    // Earlier terms got as far as generation 50.
    await raw.set(ownKeys.eventsGeneration(OWN), 49);
    const first = reader();
    first.setQueues([q]);
    first.start();
    await waitFor('the first leader', async () => first.isLeader);
    await batch(20);
    await waitFor('the first 20 completions counted', async () => total(await stats(), 'completed') === 20);
    expect(await raw.hget(ownKeys.eventsQueue(OWN, q), 'r|gen')).toBe('50');
    await first.close();

    // The counter is evicted; the queue's state keeps generation 50. Jobs go on meanwhile.
    await raw.del(ownKeys.eventsGeneration(OWN));
    await batch(20);
    const second = reader();
    second.setQueues([q]);
    second.start();
    await batch(20);

    const s = await waitFor(
      'all 60 completions counted',
      async () => {
        const st = await stats();
        return total(st, 'completed') === 60 && st;
      },
      60_000,
    );
    expect(total(s, 'added')).toBe(60);
    await waitFor('the whole stream read', async () => (await stats())?.reader.read === (await entriesAdded()));
    expect((await stats())?.reader.lost).toBe(0);
    // One term, renumbered once above what the state held; leadership was never dropped on the way.
    expect(await raw.get(ownKeys.eventsGeneration(OWN))).toBe('51');
    expect(await raw.hget(ownKeys.eventsQueue(OWN, q), 'r|gen')).toBe('51');
    expect(lines.filter((l) => l.includes('lost event reader leadership'))).toEqual([]);
    expect(lines.filter((l) => l.includes('took a higher one'))).toHaveLength(1);
    // Still exact after more work under the new number.
    await batch(10);
    await waitFor('70 completions', async () => total(await stats(), 'completed') === 70);
    expect(total(await stats(), 'added')).toBe(70);
    await second.close();
  }, 120_000);
});
