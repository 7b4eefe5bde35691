// Adversarial (session 23): two replicas, demand at the replica only (its /metrics polled every second, the leader
// never asked), then the leader stopped gracefully (SIGTERM: its deferred commits flushed, the lease released) while
// traffic goes on, then the new leader left unasked (the pace slow again) until the traffic ends. Ground truth: the
// jobs added and the worker's own completions and failures; Redis's entries-added; getJobCounts at rest.
import type { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { ownKeys } from '../src/redis/keys.js';
import { waitFor } from './helpers/bullmq.js';
import { followed, leaseHolder, leaseMoved, processHarness, redisSecondsPass } from './helpers/process-harness.js';
import { entriesAdded, metric } from './helpers/sidecar-process.js';

const harness = processHarness();

const Q = { prefix: 'bull', name: 'handed' };

describe('adversary s23: leader handover while the demand is at the replica only', () => {
  it('counters, histogram counts and gauges exact after a graceful handover and a slow-paced new leader', async () => {
    const { raw, bull, sidecar } = await harness.start();
    const q = bull.queue(Q.name);
    const start = async () => {
      const s = await sidecar({ queues: Q.name, leaseSeconds: 1 });
      return s;
    };
    const a = await start();
    const held = await leaseHolder(raw);
    const b = await start();
    await followed(raw, Q);
    const from = await entriesAdded(raw, Q).catch(() => 0);

    const seen = { added: 0, completed: 0, failed: 0, retried: 0, taken: 0 };
    const w = bull.worker(
      Q.name,
      async (job: Job) => {
        seen.taken += 1;
        if ((job.data as { i: number }).i % 6 === 0) throw new Error('planned');
      },
      { concurrency: 5 },
    );
    w.on('completed', () => (seen.completed += 1));
    w.on('failed', (job) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) seen.failed += 1;
      else seen.retried += 1;
    });
    let producing = true;
    const produce = (async () => {
      while (producing) {
        await q.addBulk(Array.from({ length: 5 }, () => ({ name: 'j', data: { i: seen.added++ }, opts: { attempts: 2 } })));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    // Demand at the replica only, for 10 s of Redis's clock.
    const poll = setInterval(() => void b.metrics().catch(() => undefined), 1000);
    await redisSecondsPass(raw, 10);
    expect(Object.keys(await raw.hgetall(ownKeys.demand('ql'))).length).toBeGreaterThan(0);
    // Graceful handover while traffic goes on.
    await a.stop();
    await leaseMoved(raw, held);
    clearInterval(poll);
    // The new leader unasked for 10 s, then the traffic ends.
    await redisSecondsPass(raw, 10);
    producing = false;
    await produce;
    await waitFor('every job settled', () => seen.completed + seen.failed === seen.added, 60_000, 100);

    let last = '';
    await waitFor(
      'exact at b',
      async () => {
        const m = await b.metrics();
        const c = await q.getJobCounts('waiting', 'active', 'completed', 'failed');
        const got = {
          readLost: metric(m, 'bullmq_exporter_events_read_total', Q) + metric(m, 'bullmq_exporter_events_lost_total', Q),
          lost: metric(m, 'bullmq_exporter_events_lost_total', Q),
          added: metric(m, 'bullmq_jobs_added_total', Q),
          completed: metric(m, 'bullmq_jobs_completed_total', Q),
          failed: metric(m, 'bullmq_jobs_failed_total', Q),
          retried: metric(m, 'bullmq_jobs_retried_total', Q),
          attempts: metric(m, 'bullmq_job_processing_seconds_count', Q),
          e2e: metric(m, 'bullmq_job_e2e_seconds_count', Q),
          waits: metric(m, 'bullmq_job_wait_seconds_count', Q),
          gCompleted: metric(m, 'bullmq_queue_jobs', Q, { state: 'completed' }),
          gFailed: metric(m, 'bullmq_queue_jobs', Q, { state: 'failed' }),
        };
        const want = {
          readLost: (await entriesAdded(raw, Q)) - from,
          lost: 0,
          added: seen.added,
          completed: seen.completed,
          failed: seen.failed,
          retried: seen.retried,
          attempts: seen.taken,
          e2e: seen.completed + seen.failed,
          waits: seen.taken,
          gCompleted: c.completed,
          gFailed: c.failed,
        };
        last = `${JSON.stringify(got)} vs ${JSON.stringify(want)}`;
        return JSON.stringify(got) === JSON.stringify(want);
      },
      60_000,
      5000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${last}`);
    });
  }, 240_000);
});
