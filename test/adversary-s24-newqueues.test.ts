// Adversary (session 24): queues created (and one obliterated) while a busy queue paces the collections, on a
// sidecar that discovers queues under two prefixes: by add, addBulk, a flow (parent and child queues), a job
// scheduler, pause() of a queue that held nothing, a queue under the second prefix. How long until each shows on
// /metrics with every job count equal to what BullMQ reads from Redis (getJobCounts), and until the obliterated one
// is gone. Polled every second (a poller: the pace is about a second).
import type { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { followed, processHarness } from './helpers/process-harness.js';
import { metric, type SidecarProcess } from './helpers/sidecar-process.js';
import { seriesKey } from './helpers/prom-text.js';

const harness = processHarness();
const STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed'] as const;

async function equalToRedis(s: SidecarProcess, q: Queue, prefix: string): Promise<boolean> {
  const m = await s.metrics();
  const c = await q.getJobCounts(...STATES);
  const ref = { prefix, name: q.name };
  if (!m.has(seriesKey('bullmq_queue_jobs', { prefix, queue: q.name, state: 'waiting' }))) return false;
  // The sidecar's label for BullMQ's 'waiting-children'.
  return STATES.every((st) => metric(m, 'bullmq_queue_jobs', ref, { state: st === 'waiting-children' ? 'waiting_children' : st }) === (c[st] ?? 0));
}

describe('adversary s24: queues that come and go while traffic runs', () => {
  it('each new queue shows equal to Redis, the obliterated one goes', async () => {
    const { raw, bull, sidecar } = await harness.start();
    const busy = bull.queue('busy');
    const gone = bull.queue('gone');
    await busy.add('first', {});
    await gone.addBulk(Array.from({ length: 5 }, (_, i) => ({ name: 'g', data: { i } })));
    const s = await sidecar({ extraArgs: ['--prefixes', 'bull,other'] });
    await followed(raw, { prefix: 'bull', name: 'busy' });
    let on = true;
    const traffic = (async () => {
      while (on) {
        await busy.add('j', {});
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const timings: string[] = [];
    try {
      const appear = async (label: string, q: Queue, prefix: string, make: () => Promise<unknown>) => {
        const t = Date.now();
        await make();
        await waitFor(`${label} equal to Redis`, () => equalToRedis(s, q, prefix), 30_000, 1000);
        timings.push(`${label}: ${Date.now() - t} ms`);
      };
      const viaAdd = bull.queue('via-add');
      await appear('add', viaAdd, 'bull', () => viaAdd.add('a', {}, { priority: 3 }));
      const viaBulk = bull.queue('via-bulk');
      await appear('addBulk', viaBulk, 'bull', () =>
        viaBulk.addBulk([
          { name: 'a', data: {} },
          { name: 'b', data: {}, opts: { delay: 60_000 } },
        ]),
      );
      const parent = bull.queue('flow-parent');
      const child = bull.queue('flow-child');
      await appear('flow (parent)', parent, 'bull', () =>
        bull.flow().add({ name: 'p', queueName: 'flow-parent', data: {}, children: [{ name: 'c', queueName: 'flow-child', data: {} }] }),
      );
      await appear('flow (child)', child, 'bull', async () => undefined);
      const sched = bull.queue('sched');
      await appear('upsertJobScheduler', sched, 'bull', () => sched.upsertJobScheduler('every-hour', { every: 3_600_000 }, { name: 's', data: {} }));
      const paused = bull.queue('paused-empty');
      await appear('pause() of an empty queue', paused, 'bull', async () => {
        await paused.pause();
        await paused.add('x', {});
      });
      const other = bull.queue('elsewhere', { prefix: 'other' });
      await appear('another prefix', other, 'other', () => other.add('o', {}));
      const t = Date.now();
      await gone.obliterate({ force: true });
      await waitFor(
        'the obliterated queue gone from /metrics',
        async () => !(await s.metrics()).has(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'gone', state: 'waiting' })),
        60_000,
        1000,
      );
      timings.push(`obliterate: gone after ${Date.now() - t} ms`);
      const m = await s.metrics();
      expect(metric(m, 'bullmq_queue_paused', { prefix: 'bull', name: 'paused-empty' })).toBe(1);
    } finally {
      on = false;
      await traffic;
      console.log(timings.join('\n'));
    }
  }, 240_000);
});
