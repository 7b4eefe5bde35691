// Owns which store the sidecar reads: the backend named by the configuration, assembled from its slice of the
// options. The sidecar composes whatever this returns and knows nothing of Redis or PostgreSQL.
import type { SidecarConfig } from '../config/sidecar-config.js';
import type { SidecarBackend } from '../domain/backend.js';
import type { Logger } from '../log/logger.js';
import type { RedisClient } from '../redis/connection.js';
import type { PostgresBackend } from '../postgres/postgres-backend.js';
import { RedisBackend } from './redis-backend.js';

/** A backend the sidecar can serve; the admin routes (Bull Board, dead letters) need a Redis connection. */
export type Backend = SidecarBackend<RedisClient>;

/** Loads the PostgreSQL backend (pg, BullMQ) only when the configuration names it: a Redis sidecar never carries them. */
export async function createBackend(config: SidecarConfig, log: Logger): Promise<Backend> {
  if (config.backend === 'postgres') return createPostgresBackend(config, log);
  return new RedisBackend({
    redisUrl: config.redisUrl,
    clusterNodes: config.redisClusterNodes,
    connectionName: 'queuelens:sidecar',
    // A command may take as long as a collection interval before the collection counts as failed.
    commandTimeoutMs: Math.max(2000, config.collectInterval * 1000),
    prefixes: config.prefixes,
    fixedQueues: config.queues,
    maxQueues: config.maxQueues,
    ownPrefix: config.ownPrefix,
    log,
    sharedLimiters: true,
    sweepMs: config.collectSweep * 1000,
    idleSweepMs: config.collectSweepIdle * 1000,
    busyMaxMs: config.collectBusyMax * 1000,
    intervalSeconds: config.collectInterval,
    events: config.events
      ? {
          shards: config.eventsShards,
          leaseMs: config.eventsLease * 1000,
          retentionMs: config.eventsRetention * 1000,
          lifecycle: { jobNameLabel: config.jobNameLabel, maxJobNames: config.maxJobNames, maxInFlight: config.eventsMaxInFlight },
        }
      : undefined,
  });
}

/** BullMQ on PostgreSQL: --database-url (resolveSidecarConfig made sure there is one), BullMQ's schema as the prefix. */
async function createPostgresBackend(config: SidecarConfig, log: Logger): Promise<PostgresBackend> {
  const [{ PostgresBackend }, { queuelensApplicationName }] = await Promise.all([
    import('../postgres/postgres-backend.js'),
    import('../postgres/connection.js'),
  ]);
  // Bull Board and the dead-letter routes work on a Redis connection: on PostgreSQL the admin surface stays off.
  if (config.adminToken) log.warn('--admin-token is set, but the admin surface (Bull Board, dead-letter routes) needs --backend redis; it is off');
  return new PostgresBackend({
    databaseUrl: config.databaseUrl!,
    schema: config.pgSchema,
    ownSchema: config.pgOwnSchema,
    statementTimeoutMs: config.pgStatementTimeout * 1000,
    applicationName: queuelensApplicationName('sidecar'),
    fixedQueues: config.queues,
    maxQueues: config.maxQueues,
    log,
    sweepMs: config.collectSweep * 1000,
    idleSweepMs: config.collectSweepIdle * 1000,
    intervalSeconds: config.collectInterval,
    events: config.events
      ? {
          leaseMs: config.eventsLease * 1000,
          retentionMs: config.eventsRetention * 1000,
          lifecycle: { jobNameLabel: config.jobNameLabel, maxJobNames: config.maxJobNames, maxInFlight: config.eventsMaxInFlight },
        }
      : undefined,
  });
}
