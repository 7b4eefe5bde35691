// The collector's group calls go out in waves: each call's command timeout runs from when it is sent, so a large
// fleet's calls sent all at once made the last ones wait behind thousands of others and time out on a busy Redis
// (50,000 queues: every collection failed). Ground truth: what the client has sent and Redis has not yet answered,
// read while Redis is paused (SIGSTOP), so nothing can be answered meanwhile.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createLogger } from '../src/log/logger.js';
import { createRedis } from '../src/redis/connection.js';
import { RedisQueueStateSource } from '../src/redis/queue-state-source.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

describe('RedisQueueStateSource waves', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startTestRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('has at most maxInFlight group calls unanswered at once, and reads every queue in order', async () => {
    const client = createRedis({ url: redis.url, name: 'waves' }) as Redis;
    const source = new RedisQueueStateSource({ redis: client, log: createLogger({ level: 'silent' }), groupSize: 2, maxInFlight: 3 });
    const admin = redis.client();
    const refs = Array.from({ length: 40 }, (_, i) => ({ prefix: 'bull', name: `q${i}` }));
    for (const [i, ref] of refs.entries()) if (i % 4 > 0) await admin.rpush(`bull:${ref.name}:wait`, ...Array.from({ length: i % 4 }, (_, k) => String(k + 1)));
    // Loads the script while Redis answers, so the paused phase sees only the group calls.
    await source.read(refs.slice(0, 1), 10);
    redis.pause();
    let reading: Promise<Awaited<ReturnType<typeof source.read>>> | undefined;
    try {
      reading = source.read(refs, 10);
      // Let the client write everything it is going to write without replies (auto-pipelining writes on a later tick).
      for (let i = 0; i < 20; i += 1) await new Promise((r) => setImmediate(r));
      expect(client.commandQueue.length).toBe(3);
    } finally {
      redis.resume();
    }
    const looks = await reading!;
    expect(looks.map((l) => l.ref.name)).toEqual(refs.map((r) => r.name));
    expect(looks.map((l) => l.reading?.waiting)).toEqual(refs.map((_, i) => i % 4));
    client.disconnect();
  });
});
