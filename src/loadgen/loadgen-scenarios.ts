// Owns what `queuelens loadgen` sends. A scenario turns "job number n" into a queue, data and options, and may
// run a companion beside the pacing loop: the steady mixes for demos, and one scenario per alert situation
// (no-workers, failing-webhook, stall, backlog) to make that alert fire on demand.
import type { LoadgenConfig, ScenarioName } from '../config/loadgen-config.js';
import { makeStall } from './stall-maker.js';
import type { Logger } from '../log/logger.js';
import type { EnqueueOptions } from '../jobs/producer.js';
import type { JobInput, QueueName } from '../jobs/schemas.js';
import type { PostgresTarget } from '../jobs/postgres-store.js';

export interface PlannedJob<Q extends QueueName = QueueName> {
  queue: Q;
  data: JobInput<Q>;
  opts?: EnqueueOptions;
  /** Built to fail, so dashboards show retries and dead letters. */
  failing: boolean;
  /** Add it to this queue instead (validated as `queue`): a queue with no worker of ours. */
  into?: string;
}

export interface CompanionContext {
  /** BullMQ on PostgreSQL: then the Redis options are not used. */
  postgres?: PostgresTarget;
  redisUrl: string;
  clusterNodes?: readonly string[];
  prefix: string;
  log: Logger;
}

export interface Companion {
  stop(): Promise<void>;
}

export interface Scenario {
  name: string;
  description: string;
  plan(n: number, random: () => number): PlannedJob;
  /** Runs beside the enqueue loop until stopped. */
  companion?(ctx: CompanionContext): Companion;
}

type ScenarioConfig = Pick<LoadgenConfig, 'mix' | 'failureShare' | 'webhookTarget' | 'exportRows'>;

export function scenarioFor(name: ScenarioName, cfg: ScenarioConfig): Scenario {
  switch (name) {
    case 'mixed':
      return mixedScenario(cfg);
    case 'demo':
      return demoScenario(cfg);
    case 'no-workers':
      return {
        name,
        description:
          'export jobs into the `reports` queue, which no worker consumes (a deploy that forgot its worker): BullMQNoWorkers, then BullMQOldestJobTooOld',
        plan: (n) => ({ queue: 'export', into: 'reports', failing: false, data: { format: 'csv', rows: cfg.exportRows, fileName: `report-${n}.csv` } }),
      };
    case 'failing-webhook':
      return {
        name,
        description: 'webhooks to a receiver that always answers 500: retries, then dead letters (BullMQHighFailureRate, BullMQDeadLetterQueueGrowing)',
        plan(n) {
          const url = new URL(cfg.webhookTarget);
          url.searchParams.set('status', '500');
          return {
            queue: 'webhook',
            failing: true,
            data: { url: url.toString(), event: 'loadgen.failing', payload: { n } },
            opts: { attempts: 3, backoff: { type: 'fixed', delay: 500 } },
          };
        },
      };
    case 'stall':
      return {
        ...mixedScenario(cfg),
        name,
        description: 'the steady mix, plus a consumer that takes an export job and dies holding it every 15 s (BullMQJobsStalling)',
        companion: (ctx) => stallEvery(ctx, 15_000, 1_000),
      };
    case 'backlog':
      return {
        name,
        description:
          'large exports (100x --export-rows rows each) faster than the export workers finish them: BullMQBacklogGrowing, then BullMQOldestJobTooOld',
        plan: (n) => ({ queue: 'export', failing: false, data: { format: n % 2 === 0 ? 'csv' : 'ndjson', rows: cfg.exportRows * 100 } }),
      };
  }
}

/**
 * The demo's mix: the steady mix plus delayed jobs (wait counted from their due time), webhooks that fail
 * now and then and succeed on a retry, duplicate adds that BullMQ deduplicates, and a consumer that dies
 * holding a job every 45 s (a stall): every metric the dashboards draw moves.
 */
function demoScenario(cfg: ScenarioConfig): Scenario {
  const mixed = mixedScenario(cfg);
  return {
    name: 'demo',
    description: 'the steady mix with delays, flaky webhooks (retries), duplicates (deduplication), dead letters and a stall every 45 s',
    plan(n, random) {
      const job = mixed.plan(n, random);
      if (n % 25 === 0 || n % 25 === 1) {
        // A pair with one deduplication id: the first waits 2 s, so the second always finds it and is dropped.
        return {
          queue: 'email',
          failing: false,
          data: { template: 'welcome', to: `digest-${n}@example.com` },
          opts: { deduplication: { id: `digest-${Math.floor(n / 25)}` }, delay: 2000 },
        };
      }
      if (job.queue === 'webhook' && !job.failing) {
        const url = new URL((job.data as JobInput<'webhook'>).url);
        url.searchParams.set('flaky', '0.3');
        job.data = { ...(job.data as JobInput<'webhook'>), url: url.toString() };
      }
      if (random() < 0.15) job.opts = { ...job.opts, delay: Math.round(1000 + random() * 5000) };
      return job;
    },
    companion: (ctx) => stallEvery(ctx, 45_000, 3_000),
  };
}

/** Crashes a consumer on the export queue every `everyMs` (the first after `firstMs`), one at a time. */
function stallEvery(ctx: CompanionContext, everyMs: number, firstMs: number): Companion {
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    running = makeStall({ postgres: ctx.postgres, redisUrl: ctx.redisUrl, clusterNodes: ctx.clusterNodes, prefix: ctx.prefix, queue: 'export' })
      .then((r) => ctx.log.info({ queue: 'export', took: r.jobId !== undefined }, 'a consumer died holding a job (planned stall)'))
      .finally(() => {
        if (stopped) return;
        timer = setTimeout(tick, everyMs);
        timer.unref();
      });
  };
  timer = setTimeout(tick, firstMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/**
 * Failing jobs use conventions the bundled demo peers honour: mail to `reject-*` is refused with 550 by the
 * demo SMTP sink, and webhook URLs with `?status=500` make the demo receiver fail.
 */
export function mixedScenario(cfg: Pick<LoadgenConfig, 'mix' | 'failureShare' | 'webhookTarget' | 'exportRows'>): Scenario {
  const entries = Object.entries(cfg.mix) as Array<[QueueName, number]>;
  const total = entries.reduce((s, [, w]) => s + w, 0);
  const pick = (r: number): QueueName => {
    let acc = 0;
    for (const [q, w] of entries) {
      acc += w / total;
      if (r < acc) return q;
    }
    return entries[entries.length - 1]?.[0] ?? 'email';
  };
  return {
    name: 'mixed',
    description: 'steady weighted mix of email, webhook and export jobs with a share built to fail',
    plan(n, random) {
      const queue = pick(random());
      const failing = random() < cfg.failureShare;
      switch (queue) {
        case 'email':
          return {
            queue,
            failing,
            data: { template: n % 5 === 0 ? 'password-reset' : 'welcome', to: `${failing ? 'reject' : 'user'}-${n}@example.com`, vars: { name: `user ${n}` } },
          };
        case 'webhook': {
          const url = new URL(cfg.webhookTarget);
          if (failing) url.searchParams.set('status', '500');
          return { queue, failing, data: { url: url.toString(), event: 'loadgen.tick', payload: { n } }, opts: failing ? { attempts: 2 } : undefined };
        }
        case 'export':
          // An unknown source fails permanently on the first attempt: a dead letter without an external peer.
          return { queue, failing, data: { format: n % 2 === 0 ? 'csv' : 'ndjson', rows: cfg.exportRows, source: failing ? 'missing' : 'synthetic' } };
      }
    },
  };
}
