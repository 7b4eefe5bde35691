// Commit pacing of the event reader: while a queue's events keep coming, its accounting and cursor are committed
// (one script call, atomically) about once a second, not once per read. Ground truth: the commit script calls
// Redis ran (MONITOR), Redis's own clock for the span of the traffic, and what was enqueued.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueueEventStats } from '../src/events/accounting.js';
import { EventReader, type EventReaderOptions } from '../src/events/event-reader.js';
import { readEventAccounting } from '../src/events/read-back.js';
import type { QueueRef } from '../src/domain/queue-ref.js';
import { createLogger } from '../src/log/logger.js';
import { ownKeys } from '../src/redis/keys.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { monitorCommands, startTestRedis, type TestRedis } from './helpers/redis-server.js';

const OWN = 'ql-pacing';
let redis: TestRedis;
let raw: Redis;
let bull: BullFixtures;

beforeAll(async () => {
  redis = await startTestRedis();
  raw = redis.client();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  raw?.disconnect();
  await bull?.close();
  await redis?.stop();
});

async function added(q: QueueRef, own = OWN): Promise<number> {
  const s: QueueEventStats | undefined = (await readEventAccounting(raw, own)).find((x) => x.queue.name === q.name)?.stats;
  return s?.counters.filter((c) => c.counter === 'added').reduce((a, c) => a + c.value, 0) ?? 0;
}

async function redisMs(): Promise<number> {
  const [s, us] = await raw.time();
  return Number(s) * 1000 + Number(us) / 1000;
}

/** A reader as these tests run it (short lease and block, no maintenance pass), with `o` on top. */
function pacingReader(ownPrefix: string, o: Partial<EventReaderOptions> = {}): EventReader {
  return new EventReader({ redisUrl: redis.url, ownPrefix, log: createLogger({ level: 'silent' }), leaseMs: 3000, blockMs: 100, maintenanceMs: 600_000, ...o });
}

describe('event reader commit pacing', () => {
  it('commits a busy queue about once a second, and counts every event once', async () => {
    const busy: QueueRef = { prefix: 'bull', name: 'pace-busy' };
    const quiet: QueueRef = { prefix: 'bull', name: 'pace-quiet' };
    const r = pacingReader(OWN);
    const hash = ownKeys.eventsQueue(OWN, busy);
    let commits = 0;
    // A stream retaining a few thousand entries, as BullMQ's do at work (a young, short stream is committed at once:
    // trimming could take what a next leader would have to read again). There before the reader: not counted.
    const retained = 1500;
    await bull.queue(busy.name).addBulk(Array.from({ length: retained }, (_, i) => ({ name: 'old', data: { i } })));
    try {
      r.setQueues([busy, quiet]);
      r.start();
      await waitFor('registered', async () => (await readEventAccounting(raw, OWN)).length === 2);
      await bull.queue(busy.name).add('j', {});
      await waitFor('first job counted', async () => (await added(busy)) === 1);
      // Commit script calls naming the busy queue's state hash (the heartbeat field is one of their arguments).
      const monitor = await monitorCommands(redis, (args) => {
        if (args[0]?.toLowerCase() === 'evalsha' && args.includes(hash) && args.includes('hb|all')) commits += 1;
      });
      const jobs = 120;
      const from = await redisMs();
      for (let i = 0; i < jobs; i++) {
        await bull.queue(busy.name).add('j', { i });
        await new Promise((res) => setTimeout(res, 20));
      }
      const spanS = ((await redisMs()) - from) / 1000;
      await waitFor('every job counted', async () => (await added(busy)) === jobs + 1);
      monitor.stop();
      // Reads every ~50 ms would commit about once per add; paced, about once per second of traffic (+ the last one,
      // and one for the round that found the stream at its end).
      expect(spanS).toBeGreaterThan(1);
      expect(commits).toBeLessThanOrEqual(Math.ceil(spanS) + 3);
      expect(await added(quiet)).toBe(0);
    } finally {
      await r.close();
    }
  });

  it('claims queues at start-up at most 10 per script call (each call well under 1 ms of Redis time)', async () => {
    const own = 'ql-pacing-init';
    const queues: QueueRef[] = Array.from({ length: 25 }, (_, i) => ({ prefix: 'bull', name: `init-${i}` }));
    for (const q of queues) await bull.queue(q.name).add('j', {});
    const widths: number[] = [];
    // Script calls (EVAL the first time, then EVALSHA) on this reader's state hashes, commits (those carry the
    // heartbeat field) aside: the claims.
    const monitor = await monitorCommands(redis, (args) => {
      if (/^eval/i.test(args[0] ?? '') && args[3]?.startsWith(own) && !args.includes('hb|all')) widths.push(Number(args[2]));
    });
    const r = pacingReader(own);
    try {
      r.setQueues(queues);
      r.start();
      await waitFor('registered', async () => (await readEventAccounting(raw, own)).length === queues.length);
      // MONITOR's lines arrive on a connection of their own, after the replies.
      await waitFor('every claim seen', async () => widths.reduce((a, b) => a + b, 0) >= queues.length);
      monitor.stop();
      expect(Math.max(...widths)).toBeLessThanOrEqual(10);
    } finally {
      await r.close();
    }
  });

  it('XREADs a quiet stream among busy ones only now and then, and still reads its first event after the quiet spell', async () => {
    const own = 'ql-pacing-quiet';
    const queues: QueueRef[] = Array.from({ length: 6 }, (_, i) => ({ prefix: 'bull', name: `mix-${i}` }));
    const [busy, , , , quiet] = queues as [QueueRef, QueueRef, QueueRef, QueueRef, QueueRef];
    // Three XREAD groups of two streams: the busy one shares no group with the quiet one.
    // No pace: every round names the busy stream (read pacing has a test of its own).
    const r = pacingReader(own, { streamsPerRead: 2, commitPaceMs: () => 0 });
    let busyReads = 0;
    let quietReads = 0;
    // The busy stream retains a few thousand entries, as at work (a short one is read again at once, no pause).
    await bull.queue(busy.name).addBulk(Array.from({ length: 1500 }, (_, i) => ({ name: 'old', data: { i } })));
    try {
      r.setQueues(queues);
      r.start();
      await waitFor('registered', async () => (await readEventAccounting(raw, own)).length === queues.length);
      const monitor = await monitorCommands(redis, (args) => {
        if (args[0]?.toLowerCase() !== 'xread') return;
        if (args.includes(`bull:${busy.name}:events`)) busyReads += 1;
        if (args.includes(`bull:${quiet.name}:events`)) quietReads += 1;
      });
      const jobs = 100;
      for (let i = 0; i < jobs; i++) {
        await bull.queue(busy.name).add('j', { i });
        await new Promise((res) => setTimeout(res, 20));
      }
      await waitFor('every busy job counted', async () => (await added(busy, own)) === jobs);
      monitor.stop();
      // Every round read every group: the quiet stream as often as the busy one. Now: a full round now and then.
      expect(busyReads).toBeGreaterThan(10);
      expect(quietReads * 3).toBeLessThan(busyReads);
      // The first event after the quiet spell is read (and counted once), busy neighbours or not.
      await bull.queue(quiet.name).add('j', {});
      await waitFor('the quiet queue counted', async () => (await added(quiet, own)) === 1);
      expect(await added(busy, own)).toBe(jobs);
    } finally {
      await r.close();
    }
  });
  it('reads a busy stream about once per pace while it can wait, and a burst into it at once, before trimming takes any of it', async () => {
    const own = 'ql-pacing-burst';
    const busy: QueueRef = { prefix: 'bull', name: 'burst-busy' };
    const other: QueueRef = { prefix: 'bull', name: 'burst-other' };
    // The busy stream keeps about 1,000 entries (BullMQ trims it at every add), filled before the reader: not counted.
    const q = bull.queue(busy.name, { streams: { events: { maxLen: 1000 } } });
    await q.addBulk(Array.from({ length: 600 }, (_, i) => ({ name: 'old', data: { i } })));
    // Two groups (one stream each) read without blocking; a pace of 20 s (the lag's grace above it, 2 × 10 s + 0.5 s).
    const r = pacingReader(own, { streamsPerRead: 1, lagRefreshMs: 10_000, commitPaceMs: () => 20_000 });
    const stream = `bull:${busy.name}:events`;
    let reads = 0;
    const stats = async () => (await readEventAccounting(raw, own)).find((x) => x.queue.name === busy.name)?.stats;
    try {
      r.setQueues([busy, other]);
      r.start();
      await waitFor('registered', async () => (await readEventAccounting(raw, own)).length === 2);
      await q.add('j', {});
      await waitFor('first job counted', async () => (await added(busy, own)) === 1);
      const monitor = await monitorCommands(redis, (args) => {
        if (args[0]?.toLowerCase() !== 'xread') return;
        if (args.includes(stream)) reads += 1;
      });
      // A steady trickle, 4 jobs (8 entries) a second: its rate times the pace stays under a quarter of what it keeps.
      // The first 12 let it learn the rate (two reads with entries) and the guard its base; the next 16 are counted.
      const steady = 28;
      let from = 0;
      let readsBefore = 0;
      for (let i = 0; i < steady; i++) {
        if (i === 12) {
          from = await redisMs();
          readsBefore = reads;
        }
        await q.add('j', { i });
        await new Promise((res) => setTimeout(res, 250));
      }
      const steadyReads = reads - readsBefore;
      const steadyS = ((await redisMs()) - from) / 1000;
      // Then 1,500 jobs (3,000 entries, three times what the stream keeps) within about 8 s: 100 times the rate it
      // was paced for, at most 400 entries a second (a burst filling a stream within one check of the guard, burst-guard.ts,
      // would be trimmed as surely from a stream read every round).
      const burst = 1500;
      for (let i = 0; i < burst; i += 10) {
        await q.addBulk(Array.from({ length: 10 }, (_, k) => ({ name: 'b', data: { k } })));
        await new Promise((res) => setTimeout(res, 50));
      }
      // Every job counted, or entries trimmed before they were read (then counted as lost).
      await waitFor(
        'every job counted, or a loss',
        async () => (await added(busy, own)) === 1 + steady + burst || ((await stats())?.reader.lost ?? 0) > 0,
        60_000,
      );
      monitor.stop();
      // Rounds start every 50 ms (blockMs / 2): unpaced, each of the 16 jobs' entries in a read of their own and the
      // stream named in the rounds between (16 reads and more, about 80). Paced: one per 20 s pace, and one more.
      expect(steadyReads).toBeLessThanOrEqual(1 + Math.ceil(steadyS / 20));
      // Nothing was trimmed before it was read: every job counted once, no loss.
      expect((await stats())?.reader.lost).toBe(0);
      expect(await added(busy, own)).toBe(1 + steady + burst);
    } finally {
      await r.close();
    }
  });
});
