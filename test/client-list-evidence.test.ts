// Worker counts from CLIENT LIST sent again only when INFO says the connections or their names may have changed:
// the counts stay equal to BullMQ's own getWorkersCount() while workers connect, leave, and connections are
// named (CLIENT SETNAME, HELLO SETNAME) or unnamed (RESET), and no CLIENT LIST is sent while nothing changed.
// Ground truth: getWorkersCount() (BullMQ's own CLIENT LIST) and Redis's count of CLIENT LIST calls.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueueRef } from '../src/domain/queue-ref.js';
import { createLogger } from '../src/log/logger.js';
import { createRedis } from '../src/redis/connection.js';
import { workerClientName } from '../src/redis/keys.js';
import { RedisQueueStateSource } from '../src/redis/queue-state-source.js';
import { BullFixtures } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
let bull: BullFixtures;
/** One connection for the whole test: a new one would itself be a change of the connections. */
let admin: Redis;

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  admin = redis.client();
});

afterAll(async () => {
  admin?.disconnect();
  await bull?.close();
  await redis?.stop();
});

async function clientListCalls(): Promise<number> {
  return Number(/^cmdstat_client\|list:calls=(\d+)/m.exec(await admin.info('commandstats'))?.[1] ?? 0);
}

describe('worker counts from CLIENT LIST, sent again only on evidence', () => {
  it('equal getWorkersCount() through connects, leaves, SETNAME, HELLO SETNAME and RESET; no CLIENT LIST while nothing changed', async () => {
    const log = createLogger({ level: 'silent' });
    const client = createRedis({ url: redis.url, name: 'test:workers', log });
    const source = new RedisQueueStateSource({ redis: client, log });
    const ref: QueueRef = { prefix: 'bull', name: 'wq' };
    const queue = bull.queue('wq');
    await queue.waitUntilReady();
    /** Our count, how many CLIENT LISTs it sent, and BullMQ's count (asked after, so its own CLIENT LIST is not ours). */
    const look = async () => {
      const before = await clientListCalls();
      const ours = (await source.workers([ref], ['bull']))?.byQueue.get('bull\u0000wq') ?? 0;
      const sent = (await clientListCalls()) - before;
      return { ours, sent, truth: await queue.getWorkersCount() };
    };
    try {
      const first = await look();
      expect(first).toMatchObject({ ours: 0, sent: 1, truth: 0 });
      expect(await look()).toEqual({ ours: 0, sent: 0, truth: 0 });

      const w = bull.worker('wq', async () => undefined);
      await w.waitUntilReady();
      const joined = await look();
      expect(joined.sent).toBe(1);
      expect(joined.ours).toBe(joined.truth);
      expect(joined.truth).toBeGreaterThan(0);
      expect(await look()).toEqual({ ...joined, sent: 0 });

      // An open connection named for the queue (no new connection, as many open): CLIENT SETNAME says so.
      await admin.client('SETNAME', workerClientName(ref));
      const named = await look();
      expect(named).toEqual({ ours: joined.truth + 1, sent: 1, truth: joined.truth + 1 });
      await admin.call('RESET');
      const reset = await look();
      expect(reset).toEqual({ ours: joined.truth, sent: 1, truth: joined.truth });
      await admin.call('HELLO', '2', 'SETNAME', workerClientName(ref));
      expect(await look()).toEqual({ ours: joined.truth + 1, sent: 1, truth: joined.truth + 1 });
      await admin.call('RESET');

      await w.close();
      const left = await look();
      expect(left.sent).toBe(1);
      expect(left).toEqual({ ours: 0, sent: 1, truth: 0 });
      expect(await look()).toEqual({ ours: 0, sent: 0, truth: 0 });
    } finally {
      client.disconnect();
    }
  });
});
