// Adversary (session 25): the event reader's idle check on the burst guard's XADD count (18e4aa0, 64fe433: LATENCY
// HISTOGRAM XADD, cross-checked against INFO once a minute and after a read whose count stood still). An idle queue,
// then jobs added after the operator switched latency tracking off, after CONFIG RESETSTAT (the histogram and
// commandstats back to zero), with tracking on again, and off and on again between two reads. Ground truth: the jobs
// added (each once); bullmq_jobs_added_total must reach exactly them each time, and waiting equal getJobCounts().
// What it guards is exactness across the switches (no entry counted twice or missed when the counts go back to zero),
// not the gate's delay: with the guard's tracking-off detection mutated away the jobs were still counted as fast.
import { describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { followed, processHarness, redisSecondsPass } from './helpers/process-harness.js';
import { metric } from './helpers/sidecar-process.js';

const harness = processHarness();
const Q = { prefix: 'bull', name: 'gated' };

describe('adversary s25: the idle gate when Redis latency tracking is switched or reset', () => {
  it('jobs added after tracking off, RESETSTAT, on, off-and-on are each counted once', async () => {
    const { raw, bull, sidecar } = await harness.start();
    const q = bull.queue(Q.name);
    await q.add('first', {});
    const s = await sidecar({ queues: Q.name });
    await followed(raw, Q);
    let expected = 0;
    const addAndSee = async (label: string, before: () => Promise<unknown>) => {
      // Idle first: the gate has seen the count stand still.
      await redisSecondsPass(raw, 3);
      await before();
      await q.addBulk(Array.from({ length: 5 }, (_, i) => ({ name: label, data: { i } })));
      expected += 5;
      const want = (await q.getJobCounts('waiting')).waiting;
      // 120 s: the documented worst case is the minute's cross-check (tracking off and on again between two reads).
      await waitFor(
        `${label}: added_total ${expected}`,
        async () => {
          const m = await s.metrics();
          const added = metric(m, 'bullmq_jobs_added_total', Q);
          if (added > expected) throw new Error(`${label}: added_total ${added} > ${expected}`);
          return added === expected && metric(m, 'bullmq_queue_jobs', Q, { state: 'waiting' }) === want;
        },
        120_000,
        250,
      );
    };
    await addAndSee('tracking on', async () => undefined);
    await addAndSee('tracking off', () => raw.config('SET', 'latency-tracking', 'no'));
    await addAndSee('resetstat, tracking off', () => raw.config('RESETSTAT'));
    await addAndSee('tracking on again', () => raw.config('SET', 'latency-tracking', 'yes'));
    await addAndSee('resetstat, tracking on', () => raw.config('RESETSTAT'));
    await addAndSee('off and on again', async () => {
      await raw.config('SET', 'latency-tracking', 'no');
      await raw.config('SET', 'latency-tracking', 'yes');
    });
    const m = await s.metrics();
    expect(metric(m, 'bullmq_jobs_added_total', Q)).toBe(expected);
  }, 900_000);
});
