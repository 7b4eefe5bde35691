// The event reader's byte budget holds per read, whatever the streams hold: streams of large `completed`
// entries (whole return values) are read, caught up and replayed at takeover without any one read (an XREAD,
// or a pipeline of XREVRANGEs) bringing more than the budget. Measured on the wire: a proxy between the reader
// and Redis records the most bytes Redis sent on a connection between two writes of the reader.
import net from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueueEventStats } from '../src/events/accounting.js';
import { EventReader } from '../src/events/event-reader.js';
import { readEventAccounting } from '../src/events/read-back.js';
import { createLogger } from '../src/log/logger.js';
import { ownKeys, queueKey } from '../src/redis/keys.js';
import { type QueueRef } from '../src/domain/queue-ref.js';
import { ReplyFramer } from '../src/redis/raw-connection.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

const OWN = 'ql-budget';
const QUEUES = 20;
const VALUE_BYTES = 2 * 1024 * 1024;
const READ_BYTES = 4 * 1024 * 1024;

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

/**
 * A loopback proxy that records the largest run of bytes Redis sent on the reader's command connection (history
 * pipelines) between two writes of the reader. The XREAD connection is measured where the reader holds the
 * bytes (ReplyFramer), since it drops an oversized reply before the rest of it arrives.
 */
async function burstProxy(target: number): Promise<{ port: number; maxBurst: () => number; reset: () => void; close: () => Promise<void> }> {
  let max = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    let burst = 0;
    let blocking = false;
    client.on('data', (d) => {
      if (d.includes('queuelens:events:read')) blocking = true;
      burst = 0;
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      burst += d.length;
      if (!blocking && burst > max) max = burst;
      if (!client.destroyed) client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    maxBurst: () => max,
    reset: () => (max = 0),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The most bytes the XREAD connection held for one reply: a reply being received, or a whole one. */
let heldByReader = 0;
const push = ReplyFramer.prototype.push;
ReplyFramer.prototype.push = function (this: ReplyFramer, chunk: Buffer): Buffer[] {
  const done = push.call(this, chunk);
  for (const r of done) heldByReader = Math.max(heldByReader, r.length);
  heldByReader = Math.max(heldByReader, (this as unknown as { partsBytes: number }).partsBytes); // the reply being received
  return done;
};

const completed = (s: QueueEventStats | undefined) => (s?.counters ?? []).filter((c) => c.counter === 'completed').reduce((a, c) => a + c.value, 0);

describe('read budget', () => {
  it(`${QUEUES} streams holding ${VALUE_BYTES / 1048576} MB return values: no read brings more than the ${READ_BYTES / 1048576} MB budget, catching up or at takeover`, async () => {
    const queues: QueueRef[] = Array.from({ length: QUEUES }, (_, i) => ({ prefix: 'bull', name: `big-${i}` }));
    const proxy = await burstProxy(redis.port);
    const log = createLogger({ level: 'silent' });
    const reader = () =>
      new EventReader({
        redisUrl: `redis://127.0.0.1:${proxy.port}`,
        ownPrefix: OWN,
        log,
        leaseMs: 30_000,
        blockMs: 100,
        readBytes: READ_BYTES,
        streamsPerRead: 100,
      });
    const stats = async () => readEventAccounting(raw, OWN);
    const allCompleted = async () => {
      const all = await stats();
      return queues.every((q) => completed(all.find((x) => x.queue.name === q.name)?.stats) === 1);
    };

    // The reader registers the queues before they exist, so it reads their streams from the start.
    const first = reader();
    first.setQueues(queues);
    first.start();
    await waitFor('queues registered', async () => (await stats()).length === QUEUES);
    await first.close();

    // Every queue completes one job with a large return value while no reader runs.
    const value = 'x'.repeat(VALUE_BYTES);
    for (const q of queues) {
      await bull.queue(q.name).add('big', {});
      const w = bull.worker(q.name, async () => value);
      await waitFor(`${q.name} completed`, async () => (await bull.queue(q.name).getJobCounts('completed')).completed === 1);
      await w.close();
    }
    const bytesInStreams = (await Promise.all(queues.map((q) => raw.memory('USAGE', queueKey(q, 'events'))))).reduce((a: number, b) => a + Number(b), 0);
    expect(bytesInStreams).toBeGreaterThan(QUEUES * VALUE_BYTES);

    // Catching up over all of it.
    heldByReader = 0;
    proxy.reset();
    const second = reader();
    second.setQueues(queues);
    second.start();
    await waitFor('every completion counted', allCompleted, 60_000);
    const catchUp = { xread: heldByReader, history: proxy.maxBurst() };
    await second.close();

    // Takeover: the history before the cursor is replayed (uncounted) to know the jobs in flight.
    heldByReader = 0;
    proxy.reset();
    const commitsBefore = await Promise.all(queues.map((q) => raw.hget(ownKeys.eventsQueue(OWN, q), 'r|commit_ms')));
    const third = reader();
    third.setQueues(queues);
    third.start();
    // A queue's first commit of the new term comes after its history was read (the claim alone comes before).
    await waitFor(
      'every queue committed by the new term',
      async () => {
        const now = await Promise.all(queues.map((q) => raw.hget(ownKeys.eventsQueue(OWN, q), 'r|commit_ms')));
        return third.isLeader && now.every((c, i) => Number(c) > Number(commitsBefore[i]));
      },
      60_000,
    );
    const takeover = { xread: heldByReader, history: proxy.maxBurst() };
    await third.close();
    await proxy.close();
    console.log(
      `[read-budget] largest read (bytes): catching up ${JSON.stringify(catchUp)}, at takeover ${JSON.stringify(takeover)}; budget ${READ_BYTES}; streams hold ${bytesInStreams}`,
    );

    // Counts stay exact: one completion per queue, none twice.
    expect(await allCompleted()).toBe(true);
    // Here two entries fit the budget; RESP framing (64 KB allowed) and the socket chunk that crossed it on top.
    const bound = READ_BYTES + 256 * 1024;
    expect(catchUp.xread).toBeLessThanOrEqual(bound);
    expect(takeover.history).toBeGreaterThan(VALUE_BYTES); // the replay did read the large entries
    expect(takeover.history).toBeLessThanOrEqual(bound);
    expect(takeover.xread).toBeLessThanOrEqual(bound);
  }, 240_000);
});
