// Owns what `queuelens loadgen` sends. A scenario turns "job number n" into a queue, data and options;
// new scenarios (no-workers, failing-webhook, stall, backlog) plug in here without touching the pacing loop.
import type { LoadgenConfig } from '../config/worker-config.js';
import type { EnqueueOptions } from './producer.js';
import type { JobInput, QueueName } from './schemas.js';

export interface PlannedJob<Q extends QueueName = QueueName> {
  queue: Q;
  data: JobInput<Q>;
  opts?: EnqueueOptions;
  /** Built to fail, so dashboards show retries and dead letters. */
  failing: boolean;
}

export interface Scenario {
  name: string;
  description: string;
  plan(n: number, random: () => number): PlannedJob;
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
          return { queue, failing, data: { template: n % 5 === 0 ? 'password-reset' : 'welcome', to: `${failing ? 'reject' : 'user'}-${n}@example.com`, vars: { name: `user ${n}` } } };
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
