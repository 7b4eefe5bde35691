// Adversarial (session 23): BullMQ features under demand pacing kept slow (a sidecar process scraped 5-10 s apart,
// --collect-busy-max 30): flows (parent and children), a job scheduler (upsertJobScheduler), deduplication,
// priorities and LIFO, a worker limiter with worker.rateLimit() inside the processor, removeOnComplete counts,
// retries with exponential backoff, a stalled job (its worker killed), and a queue obliterated and re-created.
// Ground truth: what the test added (the ids add() returned), what the workers saw (their own completed/failed
// events), and what Redis holds at rest (getJobCounts for every state the sidecar exports).
import { Worker, type Job, type Queue } from 'bullmq';
import { describe, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { seriesKey, type Series } from './helpers/prom-text.js';
import { processHarness } from './helpers/process-harness.js';
import { entriesAdded } from './helpers/sidecar-process.js';

const harness = processHarness();

const STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed'] as const;
const at = (m: Series, name: string, queue: string, extra: Record<string, string> = {}) => m.get(seriesKey(name, { prefix: 'bull', queue, ...extra }));

interface Seen {
  completed: number;
  failed: number;
  retried: number;
}

function watch(w: Worker): Seen {
  const seen = { completed: 0, failed: 0, retried: 0 };
  w.on('completed', () => (seen.completed += 1));
  w.on('failed', (job) => {
    if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) seen.failed += 1;
    else seen.retried += 1;
  });
  return seen;
}

describe('adversary s23: BullMQ features while the pace is slow', () => {
  it('every gauge equals getJobCounts at rest, every counter what was added and what the workers saw', async () => {
    const { raw, bull, sidecar } = await harness.start();
    const names = ['flow', 'sched', 'dedup', 'prio', 'limited', 'retry', 'stall', 'kept', 'reborn'];
    const queues: Record<string, Queue> = Object.fromEntries(names.map((n) => [n, bull.queue(n)]));
    // Each queue exists before the sidecar starts (its reader then counts from the stream's end: adds after start only).
    for (const n of names) await queues[n]!.add('seed', { seed: true }, { delay: 3_600_000, jobId: `seed-${n}` });
    const s = await sidecar({ extraArgs: ['--collect-busy-max', '30'] });
    await waitFor(
      'every queue followed',
      async () => {
        const m = await s.metrics();
        return names.every((n) => at(m, 'bullmq_exporter_events_read_total', n) !== undefined);
      },
      60_000,
      1000,
    );
    const added: Record<string, Set<string>> = Object.fromEntries(names.map((n) => [n, new Set<string>()]));
    const seen: Record<string, Seen> = {};
    const ok = async () => 'ok';

    // Flows: 15 parents with 3 children each, on one queue.
    const flow = bull.flow();
    for (let i = 0; i < 15; i++) {
      const node = await flow.add({
        name: 'parent',
        queueName: 'flow',
        data: { i },
        children: [0, 1, 2].map((c) => ({ name: 'child', queueName: 'flow', data: { i, c } })),
      });
      added.flow!.add(node.job.id!);
      for (const c of node.children ?? []) added.flow!.add(c.job.id!);
    }
    seen.flow = watch(bull.worker('flow', ok, { concurrency: 5 }));

    // A job scheduler every 200 ms, removed after 20 runs.
    await queues.sched!.upsertJobScheduler('tick', { every: 200 }, { name: 'tick', data: {} });
    const schedWorker = bull.worker('sched', ok);
    seen.sched = watch(schedWorker);

    // Deduplication: 40 adds under one id while the first is delayed, then 10 under distinct ids.
    let dedupAdds = 0;
    for (let i = 0; i < 40; i++) {
      const j = await queues.dedup!.add('d', { i }, { deduplication: { id: 'same' }, delay: 500 });
      dedupAdds += 1;
      added.dedup!.add(j.id!);
    }
    for (let i = 0; i < 10; i++) {
      const j = await queues.dedup!.add('d', { i }, { deduplication: { id: `own-${i}` } });
      dedupAdds += 1;
      added.dedup!.add(j.id!);
    }
    seen.dedup = watch(bull.worker('dedup', ok, { concurrency: 5 }));

    // Priorities and LIFO, no worker: they stay.
    for (let i = 0; i < 30; i++) added.prio!.add((await queues.prio!.add('p', { i }, i % 3 === 0 ? { lifo: true } : { priority: 1 + (i % 5) })).id!);

    // A limiter plus worker.rateLimit() inside the processor for one job in four (the job goes back, not failed).
    for (let i = 0; i < 40; i++) added.limited!.add((await queues.limited!.add('l', { i })).id!);
    const limitedWorker: Worker = bull.worker(
      'limited',
      async (job: Job) => {
        const d = job.data as { i: number; limited?: boolean };
        if (d.i % 4 === 0 && !d.limited) {
          await job.updateData({ ...d, limited: true });
          await limitedWorker.rateLimit(150);
          throw Worker.RateLimitError();
        }
        return 'ok';
      },
      { concurrency: 3, limiter: { max: 5, duration: 300 } },
    );
    seen.limited = watch(limitedWorker);

    // Retries with exponential backoff: every job fails twice, then completes; one in five fails for good.
    for (let i = 0; i < 30; i++) added.retry!.add((await queues.retry!.add('r', { i }, { attempts: 3, backoff: { type: 'exponential', delay: 30 } })).id!);
    seen.retry = watch(
      bull.worker('retry', async (job: Job) => {
        if (job.attemptsMade < 2 || (job.data as { i: number }).i % 5 === 0) throw new Error('planned');
        return 'ok';
      }),
    );

    // removeOnComplete / removeOnFail counts: Redis keeps 5 and 3; the counters count all.
    for (let i = 0; i < 40; i++) added.kept!.add((await queues.kept!.add('k', { i }, { removeOnComplete: 5, removeOnFail: 3 })).id!);
    seen.kept = watch(
      bull.worker('kept', async (job: Job) => {
        if ((job.data as { i: number }).i % 4 === 0) throw new Error('planned');
        return 'ok';
      }),
    );

    // A stalled job: its worker takes it and is killed; another worker finds it stalled and runs it.
    added.stall!.add((await queues.stall!.add('s', { i: 0 })).id!);
    const stuck = await bull.stuckWorker('stall', 1000, { skipStalledCheck: true });
    stuck.proc.kill('SIGKILL');
    seen.stall = watch(bull.worker('stall', ok, { stalledInterval: 500 }));

    // Obliterated, then re-created with 12 jobs.
    for (let i = 0; i < 8; i++) await queues.reborn!.add('o', { i });
    // The old stream's entries are counted only if the reader read them before the obliteration (see
    // adversary-s23-reborn.test.ts): the new stream's are always.
    // (The seed's 2 entries came before the reader; obliterate() pauses the queue first: one more entry.)
    const oldEntries = (await entriesAdded(raw, { prefix: 'bull', name: 'reborn' })) - 2 + 1;
    await queues.reborn!.obliterate({ force: true });
    await waitFor(
      'the old reborn queue gone from /metrics',
      async () => at(await s.metrics(), 'bullmq_queue_jobs', 'reborn', { state: 'waiting' }) === undefined,
      60_000,
      2000,
    );
    for (let i = 0; i < 12; i++) added.reborn!.add((await queues.reborn!.add('o', { i })).id!);

    await waitFor('20 scheduler runs', () => seen.sched!.completed >= 20, 60_000, 100);
    // Removing the scheduler deletes the job it had scheduled next (added, never run): with the worker paused, every
    // job the scheduler ever added is one completed by then or one in Redis now.
    await schedWorker.pause();
    const schedPending = (await queues.sched!.getJobs(['waiting', 'delayed', 'active', 'prioritized'])).filter((j) => j.id !== 'seed-sched').length;
    const schedAdded = seen.sched.completed + schedPending;
    await queues.sched!.removeJobScheduler('tick');
    schedWorker.resume();
    await waitFor(
      'the workers done',
      () =>
        seen.flow!.completed === 60 &&
        seen.dedup!.completed === added.dedup!.size &&
        seen.limited!.completed === 40 &&
        seen.retry!.completed + seen.retry!.failed === 30 &&
        seen.kept!.completed + seen.kept!.failed === 40 &&
        seen.stall!.completed === 1,
      120_000,
      100,
    );

    // At rest, scraped every 5 s: every gauge equals Redis, every counter the truth.
    let last = '';
    await waitFor(
      'every number exact',
      async () => {
        const m = await s.metrics();
        const wrong: string[] = [];
        const want = (what: string, got: number | undefined, truth: number) => {
          if ((got ?? 0) !== truth) wrong.push(`${what} ${got} vs ${truth}`);
        };
        for (const n of names) {
          const c = await queues[n]!.getJobCounts(...STATES);
          for (const state of STATES) want(`${n} ${state}`, at(m, 'bullmq_queue_jobs', n, { state }), c[state] ?? 0);
        }
        want('flow added', at(m, 'bullmq_jobs_added_total', 'flow'), 60);
        want('flow completed', at(m, 'bullmq_jobs_completed_total', 'flow'), 60);
        want('sched completed', at(m, 'bullmq_jobs_completed_total', 'sched'), seen.sched!.completed);
        want('sched added', at(m, 'bullmq_jobs_added_total', 'sched'), schedAdded);
        want('dedup added', at(m, 'bullmq_jobs_added_total', 'dedup'), added.dedup!.size);
        want('dedup deduplicated', at(m, 'bullmq_jobs_deduplicated_total', 'dedup'), dedupAdds - added.dedup!.size);
        want('dedup completed', at(m, 'bullmq_jobs_completed_total', 'dedup'), seen.dedup!.completed);
        want('prio added', at(m, 'bullmq_jobs_added_total', 'prio'), 30);
        want('limited added', at(m, 'bullmq_jobs_added_total', 'limited'), 40);
        want('limited completed', at(m, 'bullmq_jobs_completed_total', 'limited'), 40);
        want('limited failed', at(m, 'bullmq_jobs_failed_total', 'limited'), 0);
        want('retry completed', at(m, 'bullmq_jobs_completed_total', 'retry'), seen.retry!.completed);
        want('retry failed', at(m, 'bullmq_jobs_failed_total', 'retry'), seen.retry!.failed);
        want('retry retried', at(m, 'bullmq_jobs_retried_total', 'retry'), seen.retry!.retried);
        want('retry attempts', at(m, 'bullmq_job_processing_seconds_count', 'retry'), seen.retry!.completed + seen.retry!.failed + seen.retry!.retried);
        want('retry e2e', at(m, 'bullmq_job_e2e_seconds_count', 'retry'), 30);
        want('kept completed', at(m, 'bullmq_jobs_completed_total', 'kept'), seen.kept!.completed);
        want('kept failed', at(m, 'bullmq_jobs_failed_total', 'kept'), seen.kept!.failed);
        want('stall stalled', at(m, 'bullmq_jobs_stalled_total', 'stall'), 1);
        want('stall completed', at(m, 'bullmq_jobs_completed_total', 'stall'), 1);
        want('reborn waiting', at(m, 'bullmq_queue_jobs', 'reborn', { state: 'waiting' }), 12);
        const rebornRead = (at(m, 'bullmq_exporter_events_read_total', 'reborn') ?? 0) + (at(m, 'bullmq_exporter_events_lost_total', 'reborn') ?? 0);
        const rebornNew = await entriesAdded(raw, { prefix: 'bull', name: 'reborn' });
        if (rebornRead < rebornNew || rebornRead > rebornNew + oldEntries)
          wrong.push(`reborn read + lost ${rebornRead} vs ${rebornNew} (+ up to ${oldEntries})`);
        const rebornAdded = at(m, 'bullmq_jobs_added_total', 'reborn') ?? 0;
        if (rebornAdded < 12 || rebornAdded > 20) wrong.push(`reborn added ${rebornAdded} vs 12 (+ up to 8)`);
        for (const n of names) want(`${n} lost`, at(m, 'bullmq_exporter_events_lost_total', n), 0);
        last = wrong.join('; ');
        return wrong.length === 0;
      },
      90_000,
      5000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${last}`);
    });
  }, 300_000);
});
