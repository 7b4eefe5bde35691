// The event reader at rest over several XREAD groups (standalone): while Redis's XADD count stands still no XREAD
// is sent at all, the shard's heartbeat keeps the lag at 0, and the first event after the quiet spell is read.
// Ground truth: Redis's own command counts (INFO commandstats) and what was enqueued.
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

async function added(q: QueueRef): Promise<number> {
  const s: QueueEventStats | undefined = (await readEventAccounting(raw, OWN)).find((x) => x.queue.name === q.name)?.stats;
  return s?.counters.filter((c) => c.counter === 'added').reduce((a, c) => a + c.value, 0) ?? 0;
}

describe('event reader at rest', () => {
  it('sends no XREAD while no stream is written, keeps beating, and reads the first event after the quiet spell', async () => {
    const queues: QueueRef[] = [0, 1, 2, 3, 4].map((i) => ({ prefix: 'bull', name: `gate-${i}` }));
    // Three XREAD groups: idle rounds are paced polls (one group alone would block instead).
    const r = new EventReader({
      redisUrl: redis.url,
      ownPrefix: OWN,
      log: createLogger({ level: 'silent' }),
      leaseMs: 2000,
      blockMs: 100,
      streamsPerRead: 2,
      maintenanceMs: 600_000,
    });
    try {
      r.setQueues(queues);
      r.start();
      await waitFor('registered', async () => (await readEventAccounting(raw, OWN)).length === queues.length);
      for (const q of queues) await bull.queue(q.name).add('j', {});
      await waitFor('every job counted', async () => {
        for (const q of queues) if ((await added(q)) !== 1) return false;
        return true;
      });
      // Settled: the reader checks Redis's counts (INFO) instead of reading. Watched over at least ten checks.
      await waitFor('the reader quiet', async () => {
        const x = await calls('xread');
        await new Promise((res) => setTimeout(res, 500));
        return (await calls('xread')) === x;
      });
      const beat = await raw.hget(ownKeys.eventsMeta(OWN), 'hb|all');
      const xreads = await calls('xread');
      const infos = await calls('info');
      await waitFor('ten checks', async () => (await calls('info')) - infos >= 2 * 10 + 10, 60_000, 200);
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
