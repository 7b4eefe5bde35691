// The event reader at rest over several XREAD groups (standalone): while Redis's XADD count stands still no XREAD
// is sent at all, the shard's heartbeat keeps the lag at 0, and the first event after the quiet spell is read.
// Ground truth: Redis's own command counts (INFO commandstats) and what was enqueued. The checks read the XADD count
// through the burst guard's counter (LATENCY HISTOGRAM), not INFO.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCRIPT_FIELDS, type QueueEventStats } from '../src/events/accounting.js';
import { EventReader } from '../src/events/event-reader.js';
import { readEventAccounting } from '../src/events/read-back.js';
import type { QueueRef } from '../src/domain/queue-ref.js';
import { createLogger } from '../src/log/logger.js';
import { ownKeys } from '../src/redis/keys.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

const OWN = 'ql-idle-gate';
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

async function calls(command: string): Promise<number> {
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(await raw.info('commandstats'))?.[1] ?? 0);
}

async function added(q: QueueRef, own = OWN): Promise<number> {
  const s: QueueEventStats | undefined = (await readEventAccounting(raw, own)).find((x) => x.queue.name === q.name)?.stats;
  return s?.counters.filter((c) => c.counter === 'added').reduce((a, c) => a + c.value, 0) ?? 0;
}

/**
 * A reader in three XREAD groups (idle rounds are paced polls; one group alone would block instead) following
 * `queues` under `own`, once one job added to each is counted.
 */
async function followingOneJobEach(own: string, queues: QueueRef[]): Promise<EventReader> {
  const r = new EventReader({
    redisUrl: redis.url,
    ownPrefix: own,
    log: createLogger({ level: 'silent' }),
    leaseMs: 2000,
    blockMs: 100,
    streamsPerRead: 2,
    maintenanceMs: 600_000,
  });
  try {
    r.setQueues(queues);
    r.start();
    await waitFor('registered', async () => (await readEventAccounting(raw, own)).length === queues.length);
    for (const q of queues) await bull.queue(q.name).add('j', {});
    await waitFor('every job counted', async () => {
      for (const q of queues) if ((await added(q, own)) !== 1) return false;
      return true;
    });
    return r;
  } catch (err) {
    await r.close();
    throw err;
  }
}

describe('event reader at rest', () => {
  it('sends no XREAD while no stream is written, keeps beating, and reads the first event after the quiet spell', async () => {
    const queues: QueueRef[] = [0, 1, 2, 3, 4].map((i) => ({ prefix: 'bull', name: `gate-${i}` }));
    const r = await followingOneJobEach(OWN, queues);
    try {
      // Settled: the reader checks Redis's XADD count instead of reading. Watched over at least ten checks.
      await waitFor('the reader quiet', async () => {
        const x = await calls('xread');
        await new Promise((res) => setTimeout(res, 500));
        return (await calls('xread')) === x;
      });
      const beat = await raw.hget(ownKeys.eventsMeta(OWN), 'hb|all');
      const xreads = await calls('xread');
      // Each check is one LATENCY HISTOGRAM (the burst guard's counter; INFO only in its cross-check every 10 s).
      const histograms = await calls('latency\\|histogram');
      await waitFor('ten checks', async () => (await calls('latency\\|histogram')) - histograms >= 10, 60_000, 200);
      expect(await calls('xread')).toBe(xreads);
      expect(await raw.hget(ownKeys.eventsMeta(OWN), 'hb|all')).not.toBe(beat);
      for (const q of queues) expect(Number(await raw.hget(ownKeys.eventsQueue(OWN, q), SCRIPT_FIELDS.lagMs))).toBe(0);
      // The first event after the quiet spell is read (its XADD moves the count).
      await bull.queue(queues[3]!.name).add('j', {});
      await waitFor('the new job counted', async () => (await added(queues[3]!)) === 2);
      expect(await calls('xread')).toBeGreaterThan(xreads);
    } finally {
      await r.close();
    }
  });
});

// CONFIG RESETSTAT (or a restart) resets the XADD count the gate compares; writes after the reset that bring it back
// to the very number the gate holds must not leave an unread entry behind a skipped round (found by an adversarial
// review, when the shard's heartbeat kept the queue's lag at 0). Its own prefix: a fresh set of followed queues.
const RESET_OWN = 'ql-idle-reset';

describe('idle gate and a reset XADD count', () => {
  it('CONFIG RESETSTAT followed by exactly as many XADDs as the gate last saw does not hide a new event (was a finding: lag 0 until maintenanceMs)', async () => {
    const queues: QueueRef[] = [0, 1, 2, 3, 4].map((i) => ({ prefix: 'bull', name: `reset-${i}` }));
    const r = await followingOneJobEach(RESET_OWN, queues);
    try {
      await waitFor('the reader quiet', async () => {
        const x = await calls('xread');
        await new Promise((res) => setTimeout(res, 500));
        return (await calls('xread')) === x;
      });
      // The gate's base is the XADD count now. In one transaction: reset the stats, XADD to an unrelated stream
      // until one short of it, and one BullMQ-shaped 'added' entry to a followed stream.
      const base = await calls('xadd');
      const tx = raw.multi();
      tx.config('RESETSTAT');
      for (let i = 0; i < base - 1; i++) tx.xadd('unrelated', '*', 'n', String(i));
      tx.xadd('bull:reset-2:events', '*', 'event', 'added', 'jobId', 'raw-1', 'name', 'j');
      await tx.exec();
      expect(await calls('xadd')).toBe(base);
      // RESETSTAT zeroed the counts: ten of the reader's checks later (each one LATENCY HISTOGRAM), the entry is read.
      await waitFor('ten checks', async () => (await calls('latency\\|histogram')) >= 10, 60_000, 200);
      expect(Number(await raw.hget(ownKeys.eventsQueue(RESET_OWN, queues[2]!), SCRIPT_FIELDS.lagMs))).toBe(0);
      expect(await added(queues[2]!, RESET_OWN)).toBe(2);
    } finally {
      await r.close();
    }
  }, 120_000);
});
