// Adversary s27: get-queue-states after its integer formatting ('%d'), string arguments, the EXISTS before a head
// job's children hashes and the rank look-up of the earliest delayed job not yet overdue. Each decoded field is
// compared with a ground truth computed here from the keys written (or from BullMQ's own getters).
import { FlowProducer, Queue, Worker } from 'bullmq';
import { FlowProducer as FlowProducer5, Queue as Queue5 } from 'bullmq5';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as scripts from '../src/redis/lua-scripts.js';
import { bindScript } from '../src/redis/scripts.js';
import { waitFor } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
let client: Redis;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startTestRedis();
  client = redis.client();
});
afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
  await redis?.stop();
});

const read = (bases: string[], activeCheckLimit = 50) => bindScript(client, scripts.getQueueStates)({ bases, activeCheckLimit });
const redisNow = async () => {
  const [s, us] = await client.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
};

describe('adversary s27: get-queue-states', () => {
  it('delayed: overdue count and next due by rank agree with the scores, at the now x 4096 boundary and with ties', async () => {
    const b = 'adv:{delayed}:';
    await client.hset(`${b}meta`, 'version', 'bullmq:6');
    const now = await redisNow();
    const members: Array<[number, string]> = [];
    // Every millisecond from 30 ms before to 400 ms after now, scores exactly dueMs * 4096 (seq 0) and a few
    // with seq > 0: a read during that span lands on a score equal to now * 4096.
    for (let d = -30; d <= 400; d += 1) {
      members.push([(now + d) * 4096, `at${d}`]);
      if (d % 3 === 0) members.push([(now + d) * 4096 + 4095, `late${d}`]);
    }
    // Ties: 50 members with one score; members that are no job ids at all.
    for (let i = 0; i < 50; i += 1) members.push([(now + 10_000) * 4096 + 7, `tie${i}`]);
    await client.zadd(`${b}delayed`, ...members.flatMap(([s, m]) => [s, m]));
    await client.zadd(`${b}delayed`, '-inf', 'minus-inf', '+inf', 'plus-inf', 5, '\u00ff not an id, 1;2');
    const scores = [...members.map(([s]) => s), -Infinity, Infinity, 5];
    let boundaryHit = 0;
    for (let k = 0; k < 200; k += 1) {
      const reply = await read([b]);
      const q = reply.queues[0]!;
      const cut = reply.nowMs * 4096;
      if (scores.includes(cut)) boundaryHit += 1;
      const overdue = scores.filter((s) => s < cut).length;
      const next = Math.min(...scores.filter((s) => s >= cut));
      expect({ delayed: q.delayed, overdue: q.delayedOverdue, next: q.nextDueMs }).toEqual({
        delayed: scores.length,
        overdue,
        next: Math.floor(next / 4096),
      });
      if (reply.nowMs > now + 420) break;
    }
    // The boundary itself was read at least once (a score equal to now * 4096 is not overdue; it is next due).
    expect(boundaryHit).toBeGreaterThan(0);
    // Only +inf left past now: next due is the clamp.
    const c = 'adv:{delayed2}:';
    await client.hset(`${c}meta`, 'version', 'bullmq:6');
    await client.zadd(`${c}delayed`, '+inf', 'a', '+inf', 'b', 1, 'old');
    const q2 = (await read([c])).queues[0]!;
    expect({ delayed: q2.delayed, overdue: q2.delayedOverdue, next: q2.nextDueMs }).toEqual({
      delayed: 3,
      overdue: 1,
      next: Math.floor(Number.MAX_SAFE_INTEGER / 4096),
    });
  });

  it('hostile numbers in meta max, limiter count and head timestamps decode to the integer they hold', async () => {
    const cases: Array<{ max: string; limiter: string; ts: string; want: { globalRateMax: number; limiterCount: number; headEligibleMs: number } }> = [
      { max: '10.5', limiter: '2.7', ts: '1.5', want: { globalRateMax: 10, limiterCount: 2, headEligibleMs: 1 } },
      { max: '1e3', limiter: '0x1F', ts: '1.7e12', want: { globalRateMax: 1000, limiterCount: 31, headEligibleMs: 1.7e12 } },
      { max: 'nan', limiter: 'inf', ts: '1e400', want: { globalRateMax: -1, limiterCount: Number.MAX_SAFE_INTEGER, headEligibleMs: Number.MAX_SAFE_INTEGER } },
      {
        max: '123456789012345',
        limiter: '9007199254740993',
        ts: '99999999999999.9',
        want: { globalRateMax: 123456789012345, limiterCount: Number.MAX_SAFE_INTEGER, headEligibleMs: 99999999999999 },
      },
      { max: '-0', limiter: '-0', ts: '0', want: { globalRateMax: 0, limiterCount: 0, headEligibleMs: 0 } },
    ];
    const bases = cases.map((_, i) => `adv:{h${i}}:`);
    for (const [i, c] of cases.entries()) {
      const b = bases[i]!;
      await client.hset(`${b}meta`, 'version', 'bullmq:6', 'max', c.max);
      await client.set(`${b}limiter`, c.limiter, 'PX', 600_000);
      await client.lpush(`${b}wait`, 'j1');
      await client.hset(`${b}j1`, 'timestamp', c.ts);
    }
    const reply = await read(bases);
    const got = reply.queues.map((q) => q && { globalRateMax: q.globalRateMax, limiterCount: q.limiterCount, headEligibleMs: q.headEligibleMs });
    expect(got).toEqual(cases.map((c) => c.want));
    // No negative zero reaches the exposition.
    for (const q of reply.queues) for (const v of Object.values(q!)) expect(Object.is(v, -0)).toBe(false);
  });

  it('flow parents: the latest finish of children in :processed and :failed; over 64 ignored; a wrong-type key skips the queue only', async () => {
    const T0 = 1_700_000_000_000;
    const parent = async (b: string, processed: number[], failed: number[]) => {
      await client.hset(`${b}meta`, 'version', 'bullmq:6');
      await client.lpush(`${b}wait`, 'p');
      await client.hset(`${b}p`, 'timestamp', T0);
      for (const [suffix, list] of [
        [':processed', processed],
        [':failed', failed],
      ] as const) {
        for (const [i, fin] of list.entries()) {
          const child = `${b}c${suffix}${i}`;
          await client.hset(child, 'finishedOn', fin);
          await client.hset(`${b}p${suffix}`, child, suffix === ':failed' ? 'boom' : '"ok"');
        }
      }
    };
    await parent('adv:{f1}:', [T0 + 10, T0 + 30], [T0 + 50]); // failed child (ignoreDependencyOnFailure) finished last
    await parent('adv:{f2}:', [T0 + 70], []);
    await parent('adv:{f3}:', [], [T0 + 90]);
    await parent(
      'adv:{f4}:',
      Array.from({ length: 65 }, (_, i) => T0 + 100 + i),
      [],
    ); // more than 64: not looked at
    await parent('adv:{f5}:', [], []); // no parent at all
    await parent('adv:{f6}:', [], []);
    await client.set('adv:{f6}:p:processed', 'wrong type');
    await parent('adv:{f7}:', [T0 + 5], []);
    await client.set('adv:{f7}:p:failed', 'wrong type');
    const reply = await read(['adv:{f1}:', 'adv:{f2}:', 'adv:{f3}:', 'adv:{f4}:', 'adv:{f5}:', 'adv:{f6}:', 'adv:{f7}:']);
    expect(reply.queues.map((q) => q?.headEligibleMs)).toEqual([T0 + 50, T0 + 70, T0 + 90, T0, T0, undefined, undefined]);
    expect(reply.queues.map((q) => q?.waiting)).toEqual([1, 1, 1, 1, 1, undefined, undefined]);
  });

  it('a paused queue last written by BullMQ 5 (jobs in `paused`) and a prioritized head', async () => {
    const b = 'adv:{v5}:';
    await client.hset(`${b}meta`, 'opts.maxLenEvents', 10_000, 'paused', 1);
    await client.lpush(`${b}paused`, 'x1', 'x2', 'x3'); // head: right end, x1
    await client.hset(`${b}x1`, 'timestamp', 1_700_000_000_123, 'opts', JSON.stringify({ delay: 877 }));
    const p = 'adv:{prio}:';
    await client.hset(`${p}meta`, 'version', 'bullmq:6');
    await client.zadd(`${p}prioritized`, 3, 'low', 1, 'high');
    await client.hset(`${p}high`, 'timestamp', 1_700_000_000_500);
    const reply = await read([b, p]);
    expect(reply.queues.map((q) => q && { paused: q.paused, waiting: q.waiting, prioritized: q.prioritized, head: q.headEligibleMs })).toEqual([
      { paused: 1, waiting: 3, prioritized: 0, head: 1_700_000_000_000 + 1000 },
      { paused: 0, waiting: 0, prioritized: 2, head: 1_700_000_000_500 },
    ]);
  });

  it('a real BullMQ flow: the parent in wait is dated by its last child to finish (failed children ignored on failure)', async () => {
    const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
    const flow = new FlowProducer({ connection });
    const parents = new Queue('adv-parents', { connection });
    closers.push(
      () => flow.close(),
      () => parents.close(),
    );
    const tree = await flow.add({
      name: 'parent',
      queueName: 'adv-parents',
      data: {},
      children: [
        ...Array.from({ length: 4 }, (_, i) => ({ name: 'ok', queueName: 'adv-children', data: { i, fail: false } })),
        { name: 'bad', queueName: 'adv-children', data: { fail: true }, opts: { ignoreDependencyOnFailure: true, attempts: 1 } },
      ],
    });
    const worker = new Worker(
      'adv-children',
      async (job) => {
        await new Promise((r) => setTimeout(r, 5));
        if (job.data.fail) throw new Error('boom');
      },
      { connection, concurrency: 1 },
    );
    worker.on('error', () => undefined);
    closers.push(() => worker.close());
    await waitFor('the parent to wait', async () => (await parents.getJobCounts('waiting')).waiting === 1, 30_000);
    await worker.close();
    const children = new Queue('adv-children', { connection });
    closers.push(() => children.close());
    const finished = await Promise.all(tree.children!.map(async (c) => (await children.getJob(c.job.id!))!.finishedOn!));
    const reply = await read(['bull:adv-parents:']);
    expect(reply.queues[0]!.headEligibleMs).toBe(Math.max(...finished));
    expect(reply.queues[0]!.waiting).toBe(1);
  });

  it('BullMQ 5: a paused queue (jobs moved to `paused`) with delayed, prioritized and flow jobs, against its own counts', async () => {
    const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
    const queue = new Queue5('adv-v5', { connection });
    const flow = new FlowProducer5({ connection });
    closers.push(
      () => queue.close(),
      () => flow.close(),
    );
    const t0 = Date.now();
    for (let i = 0; i < 5; i += 1) await queue.add('w', { i });
    for (let i = 0; i < 3; i += 1) await queue.add('p', { i }, { priority: 1 + i });
    // Delayed: equal due times (one burst) and one far out; one already due but not promoted (no worker runs).
    for (let i = 0; i < 4; i += 1) await queue.add('d', { i }, { delay: 3_600_000, timestamp: t0 } as never);
    await queue.add('d-far', {}, { delay: 7_200_000 });
    await queue.add('d-due', {}, { delay: 1 });
    await flow.add({ name: 'parent', queueName: 'adv-v5', data: {}, children: [{ name: 'child', queueName: 'adv-v5-children', data: {} }] });
    await queue.pause();
    expect(await client.llen('bull:adv-v5:paused')).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 5));
    const counts = await queue.getJobCounts('waiting', 'paused', 'prioritized', 'delayed', 'waiting-children');
    const delayedJobs = await queue.getDelayed();
    const reply = await read(['bull:adv-v5:']);
    const q = reply.queues[0]!;
    const dues = delayedJobs.map((j) => j.timestamp + j.delay);
    expect({
      paused: q.paused,
      waiting: q.waiting,
      prioritized: q.prioritized,
      delayed: q.delayed,
      waitingChildren: q.waitingChildren,
      overdue: q.delayedOverdue,
      next: q.nextDueMs,
    }).toEqual({
      paused: 1,
      waiting: counts.waiting! + counts.paused!,
      prioritized: counts.prioritized,
      delayed: counts.delayed,
      waitingChildren: counts['waiting-children'],
      overdue: dues.filter((d) => d < reply.nowMs).length,
      next: Math.min(...dues.filter((d) => d >= reply.nowMs)),
    });
  });
});
