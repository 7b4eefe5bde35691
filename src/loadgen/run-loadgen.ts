// The load generator's pacing loop, shared by `queuelens loadgen` and the demo: enqueues what the scenario
// plans at `rate` jobs a second until the duration ends or the signal aborts, never bursting above the rate
// when Redis was slow, and runs the scenario's companion (e.g. a consumer that crashes) alongside.
import type { Logger } from '../log/logger.js';
import type { Scenario } from './loadgen-scenarios.js';
import type { Producer } from '../jobs/producer.js';
import type { PostgresTarget } from '../jobs/postgres-store.js';
import { withJobDefaults } from '../jobs/queue-defaults.js';
import { validateJob, type JobInput, type QueueName } from '../jobs/schemas.js';

export interface LoadgenReport {
  scenario: string;
  enqueued: number;
  seconds: number;
  /** Per queue the job was added to. */
  counts: Record<string, { sent: number; failing: number }>;
}

export interface LoadgenRun {
  producer: Producer;
  scenario: Scenario;
  rate: number;
  durationSeconds: number;
  log: Logger;
  /** For the scenario's companion. */
  postgres?: PostgresTarget;
  redisUrl: string;
  clusterNodes?: readonly string[];
  prefix: string;
  signal?: AbortSignal;
}

export async function runLoadgen(o: LoadgenRun): Promise<LoadgenReport> {
  const counts: LoadgenReport['counts'] = {};
  const started = Date.now();
  const endAt = started + o.durationSeconds * 1000;
  const companion = o.scenario.companion?.({ postgres: o.postgres, redisUrl: o.redisUrl, clusterNodes: o.clusterNodes, prefix: o.prefix, log: o.log });
  let n = 0;
  let lastReport = started;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        o.signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      o.signal?.addEventListener('abort', done, { once: true });
    });
  try {
    while (!o.signal?.aborted && Date.now() < endAt) {
      // Catch up to where the rate says we should be, then sleep one tick; a slow Redis never causes a burst above rate.
      const due = Math.min(Math.floor(((Date.now() - started) / 1000) * o.rate), n + Math.ceil(o.rate));
      const batch: Array<Promise<unknown>> = [];
      for (; n < due; n += 1) {
        const job = o.scenario.plan(n, Math.random);
        const into = job.into ?? job.queue;
        const c = (counts[into] ??= { sent: 0, failing: 0 });
        c.sent += 1;
        if (job.failing) c.failing += 1;
        batch.push(
          job.into === undefined
            ? o.producer.enqueue(job.queue, job.data as JobInput<QueueName>, job.opts)
            : // A queue of its own (no schema of its own): validated as the queue it imitates.
              o.producer.queue(job.into).add(job.queue, validateJob(job.queue, job.data), withJobDefaults(job.queue, job.opts)),
        );
      }
      await Promise.all(batch);
      if (Date.now() - lastReport >= 5000) {
        lastReport = Date.now();
        o.log.info({ scenario: o.scenario.name, enqueued: n, counts }, 'loadgen progress');
      }
      await sleep(Math.max(10, Math.min(100, 1000 / o.rate)));
    }
  } finally {
    await companion?.stop();
  }
  return { scenario: o.scenario.name, enqueued: n, seconds: (Date.now() - started) / 1000, counts };
}
