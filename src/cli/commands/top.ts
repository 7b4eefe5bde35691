// `queuelens top`: the queues at a glance in a terminal, from a sidecar (--url) or straight from Redis.
import type { Command } from 'commander';
import { pino } from 'pino';
import { addOptions } from '../../config/options.js';
import { resolveTopConfig, topOptions } from '../../config/top-config.js';
import { createLogger } from '../../log/logger.js';
import { runTop } from '../../top/run-top.js';
import { postgresSource, redisSource, sidecarSource } from '../../top/top-source.js';

export function registerTop(program: Command): void {
  const cmd = program
    .command('top')
    .description(
      "show every queue's depth, age, rates and health, refreshing in place (q quits); from a sidecar with --url, or from Redis or PostgreSQL (--backend postgres)",
    );
  addOptions(cmd, topOptions);
  cmd.action(async (raw: Record<string, unknown>) => {
    const cfg = resolveTopConfig(raw, process.stdout.isTTY === true);
    // Logs go to stderr so they never mix into the table on stdout.
    const log = createLogger({ level: cfg.logLevel, name: 'queuelens-top', destination: pino.destination(2) });
    const source = cfg.url
      ? sidecarSource(cfg.url)
      : cfg.backend === 'postgres'
        ? postgresSource({
            databaseUrl: cfg.databaseUrl!,
            schema: cfg.pgSchema,
            ownSchema: cfg.pgOwnSchema,
            statementTimeoutMs: cfg.pgStatementTimeout * 1000,
            intervalSeconds: cfg.interval,
            log,
          })
        : redisSource({
            redisUrl: cfg.redisUrl,
            clusterNodes: cfg.redisClusterNodes,
            prefixes: cfg.prefixes,
            ownPrefix: cfg.ownPrefix,
            intervalSeconds: cfg.interval,
            log,
          });
    process.exitCode = await runTop(cfg, source);
  });
}
