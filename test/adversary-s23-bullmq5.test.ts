// Adversarial (session 23): BullMQ 5 (the last 5.x, installed as the bullmq5 alias) driving the same Redis as two
// sidecar replicas left unasked (--collect-busy-max 30: the pace at its slowest): flows, deduplication, priorities,
// delayed jobs and retries with backoff, the leader SIGKILLed mid-traffic with its committed cursor behind. Ground
// truth: the ids add() returned, the workers' own completed/failed events, getJobCounts at rest, XINFO entries-added.
import { FlowProducer, Queue, Worker, type Job } from 'bullmq5';
import { afterEach, describe, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { cursorBehind, followed, leaseHolder, leaseMoved, processHarness } from './helpers/process-harness.js';
import { entriesAdded, metric } from './helpers/sidecar-process.js';

const harness = processHarness();
/** The BullMQ 5 clients, closed before the harness stops Redis (after-hooks run last registered first). */
const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
});

const Q = { prefix: 'bull', name: 'five' };
const STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed'] as const;

describe('adversary s23: BullMQ 5 under slow pacing and a leader SIGKILL', () => {
  it('every counter, histogram count and gauge exact at rest', async () => {
    const { redis, raw, sidecar } = await harness.start();
    const connection = { host: '127.0.0.1', port: redis.port, password: redis.password, maxRetriesPerRequest: null };
    const q = new Queue(Q.name, { connection });
    closers.push(() => q.close());
    await q.add('seed', {}, { delay: 3_600_000, jobId: 'seed' });
    const from = await entriesAdded(raw, Q);
    const start = () => sidecar({ queues: Q.name, leaseSeconds: 1, extraArgs: ['--collect-busy-max', '30'] });
    const a = await start();
    const held = await leaseHolder(raw);
    const b = await start();
    await followed(raw, Q);

    const seen = { completed: 0, failed: 0, retried: 0, taken: 0 };
    const ids = new Set<string>();
    let adds = 0;
    const w = new Worker(
      Q.name,
      async (job: Job) => {
        seen.taken += 1;
        const i = (job.data as { i?: number }).i ?? 1;
        if (i % 7 === 0 && job.attemptsMade === 0) throw new Error('planned, retried');
        // Not a child: a child failed for good leaves its parent waiting for children for ever.
        if (i % 11 === 0 && job.name !== 'c') throw new Error('planned, for good');
      },
      { connection, concurrency: 5 },
    );
    w.on('error', () => undefined);
    closers.push(() => w.close(true));
    w.on('completed', () => (seen.completed += 1));
    w.on('failed', (job) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) seen.failed += 1;
      else seen.retried += 1;
    });
    const flow = new FlowProducer({ connection });
    closers.push(() => flow.close());
    let i = 1;
    let producing = true;
    const opts = { attempts: 2, backoff: { type: 'exponential', delay: 20 } };
    const produce = (async () => {
      while (producing) {
        const node = await flow.add({
          name: 'p',
          queueName: Q.name,
          data: { i: i++ },
          opts,
          children: [1, 2].map(() => ({ name: 'c', queueName: Q.name, data: { i: i++ }, opts })),
        });
        ids.add(node.job.id!);
        for (const c of node.children ?? []) ids.add(c.job.id!);
        adds += 3;
        for (const o of [{ priority: 3 }, { delay: 150 }, { deduplication: { id: `d${i % 4}` } }, { lifo: true }]) {
          ids.add((await q.add('j', { i: i++ }, { ...opts, ...o })).id!);
          adds += 1;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await waitFor('traffic', async () => (await raw.xlen('bull:five:events')) > 1500, 60_000, 200);
    await cursorBehind(raw, Q, 10);
    a.cli.proc.kill('SIGKILL');
    await leaseMoved(raw, held);
    const at = seen.completed;
    await waitFor('more done under b', () => seen.completed > at + 200, 60_000, 100);
    producing = false;
    await produce;
    // Every job the producer made ends (the dedup ones may have been absorbed: ids counts each job once).
    await waitFor('every job settled', () => seen.completed + seen.failed === ids.size, 60_000, 100);

    let last = '';
    await waitFor(
      'exact at b',
      async () => {
        const m = await b.metrics();
        const c = await q.getJobCounts(...STATES);
        const wrong: string[] = [];
        const want = (what: string, got: number, truth: number) => {
          if (got !== truth) wrong.push(`${what} ${got} vs ${truth}`);
        };
        want(
          'read + lost',
          metric(m, 'bullmq_exporter_events_read_total', Q) + metric(m, 'bullmq_exporter_events_lost_total', Q),
          (await entriesAdded(raw, Q)) - from,
        );
        want('lost', metric(m, 'bullmq_exporter_events_lost_total', Q), 0);
        want('added', metric(m, 'bullmq_jobs_added_total', Q), ids.size);
        want('deduplicated', metric(m, 'bullmq_jobs_deduplicated_total', Q), adds - ids.size);
        want('completed', metric(m, 'bullmq_jobs_completed_total', Q), seen.completed);
        want('failed', metric(m, 'bullmq_jobs_failed_total', Q), seen.failed);
        want('retried', metric(m, 'bullmq_jobs_retried_total', Q), seen.retried);
        want('attempts', metric(m, 'bullmq_job_processing_seconds_count', Q), seen.taken);
        want('e2e', metric(m, 'bullmq_job_e2e_seconds_count', Q), seen.completed + seen.failed);
        for (const state of STATES) want(state, metric(m, 'bullmq_queue_jobs', Q, { state }), c[state] ?? 0);
        last = wrong.join('; ');
        return wrong.length === 0;
      },
      60_000,
      5000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${last}`);
    });
  }, 240_000);
});
