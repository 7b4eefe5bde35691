// `queuelens loadgen`: paced traffic at --rate for --duration, as a --scenario plans it (a steady mix, or the
// situation behind one of the bundled alerts), for demos and benchmarks.
import type { Command } from 'commander';
import { addOptions } from '../../config/options.js';
import { loadgenOptions, resolveLoadgenConfig } from '../../config/loadgen-config.js';
import { scenarioFor } from '../../loadgen/loadgen-scenarios.js';
import { postgresTarget } from '../../config/backend-options.js';
import { preparePostgres } from '../../jobs/postgres-store.js';
import { Producer } from '../../jobs/producer.js';
import { runLoadgen } from '../../loadgen/run-loadgen.js';
import { createLogger } from '../../log/logger.js';
import { shutdownTracing } from '../../tracing/state.js';

export function registerLoadgen(program: Command): void {
  const cmd = program
    .command('loadgen')
    .description("enqueue paced jobs: a steady mix (some built to fail), or --scenario to make one alert's situation happen");
  addOptions(cmd, loadgenOptions);
  cmd.action(async (raw: Record<string, unknown>) => {
    const cfg = resolveLoadgenConfig(raw);
    const log = createLogger({ level: cfg.logLevel, name: 'queuelens-loadgen' });
    const scenario = scenarioFor(cfg.scenario, cfg);
    const postgres = postgresTarget(cfg);
    if (postgres) await preparePostgres(postgres);
    const producer = new Producer(postgres ? { postgres } : { redisUrl: cfg.redisUrl, clusterNodes: cfg.redisClusterNodes, prefix: cfg.prefix });
    const abort = new AbortController();
    const onSignal = () => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    log.info({ scenario: scenario.name, what: scenario.description, rate: cfg.rate, seconds: cfg.duration }, 'loadgen starting');
    try {
      const report = await runLoadgen({
        producer,
        scenario,
        rate: cfg.rate,
        durationSeconds: cfg.duration,
        log,
        postgres,
        redisUrl: cfg.redisUrl,
        clusterNodes: cfg.redisClusterNodes,
        prefix: cfg.prefix,
        signal: abort.signal,
      });
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await producer.close();
      await shutdownTracing();
    }
  });
}
