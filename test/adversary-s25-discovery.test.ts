// Adversary (session 25): discovery on evidence with traffic (7a74656: a standalone Redis is not SCANned while the
// stream proof says every XADD went to a known queue's stream; removals by a look at the known metas). A busy queue
// with a worker keeps the proof holding (Redis's own SCAN count stops moving: the ground truth that it holds), then
// queues appear next to XADDs that fail, XADDs with NOMKSTREAM, another application's stream, an obliterated and
// re-created queue, a queue under the second prefix, a flow, a job scheduler. Each must show on /metrics with every
// job count equal to BullMQ's getJobCounts() and its events accounted for (read + lost = the stream's entries-added).
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { followed, processHarness, redisMs } from './helpers/process-harness.js';
import { seriesKey } from './helpers/prom-text.js';
import { entriesAdded, metric, type SidecarProcess } from './helpers/sidecar-process.js';

const harness = processHarness();
const STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed'] as const;

async function stat(raw: Redis, section: string, field: RegExp): Promise<number> {
  return Number(field.exec(await raw.info(section))?.[1] ?? 0);
}
const scanCalls = (raw: Redis) => stat(raw, 'commandstats', /^cmdstat_scan:calls=(\d+)/m);
const xaddCalls = (raw: Redis) => stat(raw, 'commandstats', /^cmdstat_xadd:calls=(\d+)/m);

/**
 * The queue on /metrics, every job count equal to getJobCounts(), its stream read or counted lost to its end (`extra`:
 * entries of a stream deleted since, which only a reader that read them before the DEL counts; null: the events not
 * compared, for a queue the sidecar may have seen gone between obliterate() and the next add, and then follows
 * again from its stream's end).
 */
async function exact(s: SidecarProcess, raw: Redis, q: Queue, prefix: string, extra: number | null = 0): Promise<boolean> {
  const ref = { prefix, name: q.name };
  const m = await s.metrics();
  if (!m.has(seriesKey('bullmq_queue_jobs', { prefix, queue: q.name, state: 'waiting' }))) return false;
  const c = await q.getJobCounts(...STATES);
  const same = STATES.every((st) => metric(m, 'bullmq_queue_jobs', ref, { state: st === 'waiting-children' ? 'waiting_children' : st }) === (c[st] ?? 0));
  const events = metric(m, 'bullmq_exporter_events_read_total', ref) + metric(m, 'bullmq_exporter_events_lost_total', ref);
  // A queue without a stream yet (only its meta hash) has had nothing added to it.
  const added = (await raw.exists(`${prefix}:${q.name}:events`)) === 1 ? await entriesAdded(raw, ref) : 0;
  if (same && (extra === null || (events >= added && events <= added + extra))) return true;
  // Thrown, not returned: waitFor's timeout then says what differed.
  const shown = STATES.map(
    (st) => `${st} ${metric(m, 'bullmq_queue_jobs', ref, { state: st === 'waiting-children' ? 'waiting_children' : st })}/${c[st] ?? 0}`,
  );
  throw new Error(`${q.name}: ${shown.join(', ')}; events read+lost ${events}, entries-added ${added} (+${extra})`);
}

/** Waits until a stretch of 3 s (Redis's clock) with traffic on the busy stream and no SCAN: the proof holds. */
async function proofHolding(raw: Redis): Promise<void> {
  await waitFor(
    'discovery passes with traffic and no SCAN',
    async () => {
      const [scans, xadds, at] = [await scanCalls(raw), await xaddCalls(raw), await redisMs(raw)];
      while ((await redisMs(raw)) - at < 3000) await new Promise((r) => setTimeout(r, 250));
      return (await scanCalls(raw)) === scans && (await xaddCalls(raw)) > xadds;
    },
    120_000,
    0,
  );
}

async function busyWithWorker(h: Awaited<ReturnType<typeof harness.start>>): Promise<{ stop(): Promise<void> }> {
  const busy = h.bull.queue('busy');
  // A worker (its stalled-check key expires every stalledInterval, as any worker's does) and a producer.
  h.bull.worker('busy', async () => undefined, { stalledInterval: 1000, removeOnComplete: { count: 50 } });
  let on = true;
  const traffic = (async () => {
    while (on) {
      await busy.add('j', {});
      await new Promise((r) => setTimeout(r, 40));
    }
  })();
  return {
    async stop() {
      on = false;
      await traffic;
    },
  };
}

describe('adversary s25: queues appearing while the stream proof holds', () => {
  it('next to failed and NOMKSTREAM XADDs, a foreign stream, a re-created queue: every new queue exact', async () => {
    const h = await harness.start();
    const { raw, bull } = h;
    const old = bull.queue('old');
    await old.addBulk(Array.from({ length: 3 }, (_, i) => ({ name: 'o', data: { i } })));
    const traffic = await busyWithWorker(h);
    const s = await h.sidecar({ extraArgs: ['--prefixes', 'bull,other'] });
    const log: string[] = [];
    try {
      await followed(raw, { prefix: 'bull', name: 'busy' });
      await proofHolding(raw);
      // XADDs that add nothing (a key of another type, NOMKSTREAM on a missing stream), then a new queue's job.
      await raw.set('not-a-stream', 'x');
      await raw.xadd('not-a-stream', '*', 'f', 'v').catch(() => undefined);
      await raw.xadd('bull:ghost:events', 'NOMKSTREAM', '*', 'f', 'v');
      const a = bull.queue('after-failed');
      await a.add('a', {}, { priority: 2 });
      await waitFor('after-failed exact', () => exact(s, raw, a, 'bull'), 60_000, 500);
      log.push(`after failed XADDs: found, SCANs ${await scanCalls(raw)}`);

      // Another application's stream written in the same breath as a new queue's first job, in one MULTI.
      await proofHolding(raw);
      const b = bull.queue('beside-foreign');
      await raw.multi().xadd('app:audit', '*', 'who', 'me').xadd('app:audit', '*', 'who', 'you').exec();
      await b.addBulk([
        { name: 'b', data: {} },
        { name: 'd', data: {}, opts: { delay: 3_600_000 } },
      ]);
      await waitFor('beside-foreign exact', () => exact(s, raw, b, 'bull'), 60_000, 500);

      // The known quiet queue obliterated and re-created with more events than it ever had, with a queue under the
      // second prefix, a flow's child queue and a scheduler's queue, all between two passes. (obliterate() first
      // pauses, and the sidecar may see the queue gone before the next add: its events are not compared.)
      await proofHolding(raw);
      await old.obliterate({ force: true });
      await old.addBulk(Array.from({ length: 8 }, (_, i) => ({ name: 'o2', data: { i } })));
      const other = bull.queue('elsewhere', { prefix: 'other' });
      await other.add('x', {});
      await bull.flow().add({ name: 'p', queueName: 'flow-parent', data: {}, children: [{ name: 'c', queueName: 'flow-child', data: {} }] });
      const sched = bull.queue('sched');
      await sched.upsertJobScheduler('hourly', { every: 3_600_000 }, { name: 's', data: {} });
      for (const [q, prefix, extra] of [
        [old, 'bull', null],
        [other, 'other', 0],
        [bull.queue('flow-parent'), 'bull', 0],
        [bull.queue('flow-child'), 'bull', 0],
        [sched, 'bull', 0],
      ] as Array<[Queue, string, number | null]>) {
        await waitFor(`${q.name} exact`, () => exact(s, raw, q, prefix, extra), 60_000, 500);
      }
      const m = await s.metrics();
      expect(metric(m, 'bullmq_queue_jobs', { prefix: 'bull', name: 'old' }, { state: 'waiting' })).toBe(8);
      expect(m.has(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'ghost', state: 'waiting' }))).toBe(false);
    } finally {
      await traffic.stop();
      console.log(log.join('\n'));
    }
  }, 600_000);

  // FINDING (7a74656, discovery on evidence): a Queue object that only wrote its meta hash (new Queue(name), no job
  // yet: BullMQ's HMSET of opts.maxLenEvents/version, no XADD) is not discovered while traffic runs on known queues
  // and any key has expired since the last SCAN (every worker's stalled-check key expires each stalledInterval, 30 s
  // by default): the key count, which discovery counts on for such a queue, is ignored once expired_keys moved, and
  // the stream proof holds (every XADD went to the busy queue's stream), so it waits for the forced full SCAN (10 min
  // by default). Before 7a74656 (XADD/DEL among the key commands) the next pass SCANned: found after 625 ms in this
  // test on 7a74656^; on c6a86a2 not within 90 s. At rest with an idle worker the same 10 min wait was already
  // accepted (discovery.ts quietSinceLastFull); with traffic it is new. Reproduce: this test without .skip.
  it.skip('FINDING: a Queue object that only wrote its meta hash, while traffic runs and a worker key expires, is found', async () => {
    const h = await harness.start();
    const { raw, bull } = h;
    const traffic = await busyWithWorker(h);
    const s = await h.sidecar();
    try {
      await followed(raw, { prefix: 'bull', name: 'busy' });
      await proofHolding(raw);
      const expired = await stat(raw, 'stats', /^expired_keys:(\d+)/m);
      await waitFor('a key expired', async () => (await stat(raw, 'stats', /^expired_keys:(\d+)/m)) > expired, 60_000, 200);
      const q = bull.queue('meta-only');
      await q.waitUntilReady();
      await waitFor('the meta hash', async () => (await raw.hexists('bull:meta-only:meta', 'opts.maxLenEvents')) === 1, 30_000, 50);
      // 90 s: the old build found it at the next pass (0.5 s); the forced full SCAN comes after 10 min.
      await waitFor('meta-only on /metrics', () => exact(s, raw, q, 'bull'), 90_000, 500);
    } finally {
      await traffic.stop();
    }
  }, 600_000);
});
