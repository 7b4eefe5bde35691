// Adversarial (session 23): the leader SIGKILLed while demand keeps its pace slow (nobody scrapes either replica;
// --collect-busy-max 30; leadership watched in Redis, not over HTTP, so watching asks for nothing). Two queues under
// the same sidecars: one whose events stream is capped at 400 entries and gets bursts well past that (addBulk of
// 300 jobs: about 600 entries at once), one uncapped with the same steady traffic, jobs failing and retried. The
// leader is killed twice with its committed cursor behind. Ground truth: Redis's XINFO entries-added (read + lost
// must equal it), and the jobs the test added, completed, retried and failed (the worker's own events): on the
// uncapped queue every counter and every histogram's count exact.
import type { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { cursorBehind, leaseHolder, leaseMoved, processHarness } from './helpers/process-harness.js';
import { caughtUp, entriesAdded, metric, type SidecarProcess } from './helpers/sidecar-process.js';

const harness = processHarness();

const CAPPED = { prefix: 'bull', name: 'capped' };
const WIDE = { prefix: 'bull', name: 'wide' };

interface Truth {
  added: number;
  completed: number;
  failed: number;
  retried: number;
  /** Attempts taken by a worker (each is one wait observation and, once ended, one processing observation). */
  taken: number;
}

describe('adversary s23: leader killed twice while paced slowly, a capped stream under bursts', () => {
  it('read + lost = entries-added on the capped stream; every counter and histogram count exact on the uncapped one', async () => {
    const { raw, bull, sidecar } = await harness.start(['--stream-node-max-entries', '10']);
    const start = async () => {
      const s = await sidecar({
        queues: `${CAPPED.name},${WIDE.name}`,
        leaseSeconds: 1,
        extraArgs: ['--collect-busy-max', '30'],
      });
      return s;
    };
    const a = await start();
    const held = await leaseHolder(raw);
    const b = await start();

    const truth: Record<string, Truth> = {};
    const queues = [CAPPED, WIDE].map((q) => {
      truth[q.name] = { added: 0, completed: 0, failed: 0, retried: 0, taken: 0 };
      const t = truth[q.name] as Truth;
      const producer = bull.queue(q.name, q === CAPPED ? { streams: { events: { maxLen: 400 } } } : {});
      const w = bull.worker(
        q.name,
        async (job: Job) => {
          t.taken += 1;
          if ((job.data as { i: number }).i % 5 === 0) throw new Error('planned');
          return 'ok';
        },
        { concurrency: 10 },
      );
      w.on('completed', () => (t.completed += 1));
      w.on('failed', (job) => {
        if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) t.failed += 1;
        else t.retried += 1;
      });
      return { q, producer, t };
    });
    const opts = { attempts: 2, backoff: { type: 'fixed', delay: 20 } };
    let producing = true;
    let burst = false;
    const produce = Promise.all(
      queues.map(async ({ q, producer, t }) => {
        while (producing) {
          const n = burst && q === CAPPED ? 300 : 10;
          await producer.addBulk(Array.from({ length: n }, () => ({ name: 'j', data: { i: t.added++ }, opts })));
          await new Promise((r) => setTimeout(r, 50));
        }
      }),
    );

    const kill = async (s: SidecarProcess, was: string) => {
      // One burst on the capped stream, then the kill while what was read of the wide one is not committed.
      burst = true;
      await new Promise((r) => setTimeout(r, 120));
      burst = false;
      await cursorBehind(raw, WIDE, 20);
      s.cli.proc.kill('SIGKILL');
      return leaseMoved(raw, was);
    };
    await waitFor('traffic on both', async () => (await raw.xlen('bull:capped:events')) >= 350 && (await raw.xlen('bull:wide:events')) >= 350, 60_000, 100);
    const heldB = await kill(a, held);
    const c = await start();
    await waitFor('more traffic', async () => (await entriesAdded(raw, WIDE)) > 3000, 60_000, 200);
    await kill(b, heldB);
    await waitFor('c leads', async () => (await c.metrics()).get('bullmq_exporter_leader') === 1, 30_000, 200);
    producing = false;
    await produce;
    await waitFor('every job settled', () => queues.every(({ t }) => t.completed + t.failed === t.added), 60_000, 100);

    const capped = await caughtUp(c, raw, CAPPED, 60_000);
    const lost = metric(capped, 'bullmq_exporter_events_lost_total', CAPPED);
    const read = metric(capped, 'bullmq_exporter_events_read_total', CAPPED);
    const tc = truth[CAPPED.name] as Truth;
    console.log(
      `capped: read ${read} + lost ${lost} vs entries-added ${await entriesAdded(raw, CAPPED)}; added ${metric(capped, 'bullmq_jobs_added_total', CAPPED)} vs ${tc.added}`,
    );
    expect(read + lost).toBe(await entriesAdded(raw, CAPPED));
    expect(metric(capped, 'bullmq_jobs_added_total', CAPPED)).toBeLessThanOrEqual(tc.added);
    expect(metric(capped, 'bullmq_jobs_completed_total', CAPPED)).toBeLessThanOrEqual(tc.completed);
    expect(metric(capped, 'bullmq_jobs_added_total', CAPPED)).toBeGreaterThanOrEqual(tc.added - lost);

    const m = await caughtUp(c, raw, WIDE, 60_000);
    const tw = truth[WIDE.name] as Truth;
    const got = {
      lost: metric(m, 'bullmq_exporter_events_lost_total', WIDE),
      added: metric(m, 'bullmq_jobs_added_total', WIDE),
      completed: metric(m, 'bullmq_jobs_completed_total', WIDE),
      failed: metric(m, 'bullmq_jobs_failed_total', WIDE),
      retried: metric(m, 'bullmq_jobs_retried_total', WIDE),
      wait: metric(m, 'bullmq_job_wait_seconds_count', WIDE),
      processing: metric(m, 'bullmq_job_processing_seconds_count', WIDE),
      e2e: metric(m, 'bullmq_job_e2e_seconds_count', WIDE),
      unmatched: metric(m, 'bullmq_exporter_events_unmatched_total', WIDE),
    };
    console.log(`wide: ${JSON.stringify(got)} vs ${JSON.stringify(tw)}`);
    expect(got).toEqual({
      lost: 0,
      added: tw.added,
      completed: tw.completed,
      failed: tw.failed,
      retried: tw.retried,
      wait: tw.taken,
      processing: tw.taken,
      e2e: tw.completed + tw.failed,
      unmatched: 0,
    });
    expect(metric(m, 'bullmq_job_processing_seconds_bucket', WIDE, { le: '+Inf' })).toBe(tw.taken);
  }, 300_000);
});
