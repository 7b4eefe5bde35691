// Freshness paced by demand, end to end (collector/demand-pace.ts): real sidecars on a real Redis. While nobody asks
// for the data, a queue whose events keep moving is re-read only once per --collect-busy-max; a replica polled for
// its /metrics brings the leader back to about once a second (its looks reach the leader through Redis); and what
// is shown stays what Redis holds. Ground truth: the commands Redis ran (MONITOR), what the test enqueued and what
// Redis holds.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readEventAccounting } from '../src/events/read-back.js';
import { ownKeys } from '../src/redis/keys.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { seriesKey } from './helpers/prom-text.js';
import { monitorCommands, startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let bull: BullFixtures;
const sidecars: Array<Awaited<ReturnType<typeof testSidecar>>> = [];

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
});
afterEach(async () => {
  await Promise.all(sidecars.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await bull.close();
  await redis.stop();
});

describe('freshness paced by demand', () => {
  it("re-reads a busy queue once per --collect-busy-max while nobody asks, about every second while a replica's /metrics is polled, and stays exact", async () => {
    const p = 'dp1';
    const own = `ql-${p}`;
    const q = bull.queue('busy', { prefix: p });
    await q.add('first', {});
    const opts = { prefixes: p, ownPrefix: own, collectInterval: '1', collectSweep: '3600', collectBusyMax: '30' };
    const leader = await testSidecar(redis.url, opts);
    sidecars.push(leader);
    await leader.start();
    // Followed, without asking the leader for anything: its accounting is in Redis.
    const client = redis.client();
    await waitFor('the leader follows the queue', async () => (await readEventAccounting(client, own)).some((a) => a.queue.name === 'busy'));
    const replica = await testSidecar(redis.url, opts);
    sidecars.push(replica);
    await replica.start();

    // The leader's collections reading the queue: its group script names the queue's key base.
    const reads: number[] = [];
    const monitor = await monitorCommands(redis, (args) => {
      if (/^evalsha/i.test(args[0] ?? '') && args.includes(`${p}:busy:`)) reads.push(Date.now());
    });
    const redisSeconds = async () => Number((await client.time())[0]);
    let added = 1;
    let producing = true;
    const producer = (async () => {
      while (producing) {
        await q.add('j', { added });
        added += 1;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      // Nobody asks either sidecar for 10 s of Redis's clock: at most one read in (the first change), not ten.
      const quietFrom = await redisSeconds();
      await waitFor('10 s', async () => (await redisSeconds()) - quietFrom >= 10, 60_000, 500);
      const quietReads = reads.length;
      expect(quietReads).toBeLessThanOrEqual(2);
      // Its /metrics polled (the replica's, not the leader's): the replica writes how often it is asked, the
      // leader reads it, and re-reads the busy queue about once a second again.
      const poll = setInterval(() => void replica.scrape().catch(() => undefined), 200);
      try {
        await waitFor('five more reads', () => reads.length >= quietReads + 5, 30_000);
        const demand = await client.hgetall(ownKeys.demand(own));
        expect(Object.keys(demand).length).toBeGreaterThan(0);
      } finally {
        clearInterval(poll);
      }
    } finally {
      producing = false;
      await producer;
      monitor.stop();
    }
    // Exact: the replica renders the leader's snapshot and accounting, what Redis holds and what was enqueued.
    const labels = { prefix: p, queue: 'busy' };
    const waiting = (await q.getJobCounts('waiting')).waiting;
    // 'first' and the producer's added - 1 jobs; only the producer's were added while the reader followed the queue.
    expect(waiting).toBe(added);
    await waitFor('depth exact', async () => (await replica.scrape()).get(seriesKey('bullmq_queue_jobs', { ...labels, state: 'waiting' })) === waiting);
    await waitFor('added exact', async () => (await replica.scrape()).get(seriesKey('bullmq_jobs_added_total', labels)) === added - 1);
    client.disconnect();
  });
});
