// `queuelens loadgen`: steady traffic at --rate for --duration, for demos and benchmarks.
import type { Command } from 'commander';
import { addOptions } from '../../config/options.js';
import { loadgenOptions, resolveLoadgenConfig } from '../../config/worker-config.js';
import { mixedScenario } from '../../jobs/loadgen-scenarios.js';
import { Producer } from '../../jobs/producer.js';
import type { JobInput, QueueName } from '../../jobs/schemas.js';
import { createLogger } from '../../log/logger.js';
import { shutdownTracing } from '../../tracing/state.js';

export function registerLoadgen(program: Command): void {
  const cmd = program.command('loadgen').description('enqueue a steady mix of email, webhook and export jobs, some built to fail');
  addOptions(cmd, loadgenOptions);
  cmd.action(async (raw: Record<string, unknown>) => {
    const cfg = resolveLoadgenConfig(raw);
    const log = createLogger({ level: cfg.logLevel, name: 'queuelens-loadgen' });
    const scenario = mixedScenario(cfg);
    const producer = new Producer({ redisUrl: cfg.redisUrl, prefix: cfg.prefix });
    const counts: Record<string, { sent: number; failing: number }> = {};
    let stop = false;
    const onSignal = () => {
      stop = true;
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const started = Date.now();
    const endAt = started + cfg.duration * 1000;
    let n = 0;
    let lastReport = started;
    try {
      while (!stop && Date.now() < endAt) {
        // Catch up to where the rate says we should be, then sleep one tick; a slow Redis never causes a burst above rate.
        const due = Math.min(Math.floor(((Date.now() - started) / 1000) * cfg.rate), n + Math.ceil(cfg.rate));
        const batch: Array<Promise<unknown>> = [];
        for (; n < due; n += 1) {
          const job = scenario.plan(n, Math.random);
          const c = (counts[job.queue] ??= { sent: 0, failing: 0 });
          c.sent += 1;
          if (job.failing) c.failing += 1;
          batch.push(producer.enqueue(job.queue, job.data as JobInput<QueueName>, job.opts));
        }
        await Promise.all(batch);
        if (Date.now() - lastReport >= 5000) {
          lastReport = Date.now();
          log.info({ scenario: scenario.name, enqueued: n, counts }, 'loadgen progress');
        }
        await new Promise((r) => setTimeout(r, Math.max(10, Math.min(100, 1000 / cfg.rate))));
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await producer.close();
      await shutdownTracing();
    }
    process.stdout.write(`${JSON.stringify({ scenario: scenario.name, enqueued: n, seconds: (Date.now() - started) / 1000, counts })}\n`);
  });
}
