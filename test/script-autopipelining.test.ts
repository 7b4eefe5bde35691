// A script bound while an auto-pipeline is pending on the same connection. ioredis copies a connection's scripts
// into each auto-pipeline when it creates it, so a script defined after that pipeline was created, and called in
// the same tick, used to throw `pipeline[functionName] is not a function` (seen in CI under load: a dead letter's
// lease release failed, and the worker's copy with it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/log/logger.js';
import { createRedis, type RedisClient } from '../src/redis/connection.js';
import { leaseRelease, leaseRenew } from '../src/redis/lua-scripts.js';
import { bindScript } from '../src/redis/scripts.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

const log = createLogger({ level: 'silent' });
let redis: TestRedis;
let client: RedisClient;

beforeAll(async () => {
  redis = await startTestRedis();
  client = createRedis({ url: redis.url, name: 'queuelens:test', log });
  if (client.status !== 'ready') await new Promise((r) => client.once('ready', r));
});
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

describe('Lua scripts on an auto-pipelined connection', () => {
  it('a script bound while an auto-pipeline is pending runs, in the same tick', async () => {
    // An un-awaited command (taking the lease) opens an auto-pipeline; the scripts are bound and called before it is flushed.
    const pending = client.set('lease', 't');
    const renew = bindScript(client, leaseRenew);
    const release = bindScript(client, leaseRelease);
    const calls = [renew({ key: 'lease', token: 't', ms: 10_000 }), release({ key: 'lease', token: 't' }), release({ key: 'lease', token: 't' })];
    await pending;
    expect(await Promise.all(calls)).toEqual([true, true, false]);
    // Ground truth from Redis: the lease was taken and released.
    expect(await client.exists('lease')).toBe(0);
  });
});
