// The backend options of the worker-side commands (worker, enqueue, dlq, loadgen, demo): the sidecar's (common.ts:
// --backend, --database-url, --pg-schema, --pg-own-schema) plus --migrate, and the PostgreSQL target they resolve to.
import { backendOption, databaseUrlOption, pgOwnSchemaOption, pgSchemaOption, postgresBackend, type BackendKind } from './common.js';
import { ConfigError, option, parse } from './options.js';

export const migrateOption = option({
  name: 'migrate',
  env: 'QUEUELENS_PG_MIGRATE',
  description: "with --backend postgres: create or upgrade BullMQ's schema (BullMQ's own migrations) before starting; needs a role allowed to",
  default: 'false',
  parse: parse.boolean,
});

/** The backend options of a worker-side command, in the order --help lists them. */
export const backendOptions = [backendOption, databaseUrlOption, pgSchemaOption, pgOwnSchemaOption] as const;

/** Where BullMQ's PostgreSQL backend keeps the queues. */
export interface PostgresTarget {
  databaseUrl: string;
  /** BullMQ's schema (`connection.schema`). */
  schema: string;
  /** queuelens's own schema (--pg-own-schema): the dead letters' markers and held secrets. */
  ownSchema: string;
  /** Whether this process may run BullMQ's migrations. */
  migrate: boolean;
}

type BackendConfig = {
  backend: BackendKind;
  databaseUrl?: string;
  pgSchema: string;
  pgOwnSchema: string;
  migrate?: boolean;
  redisClusterNodes?: string[];
};

/** Validates the backend options of a resolved config (a ConfigError names what is missing) and returns it. */
export function checkedBackend<C extends BackendConfig>(cfg: C): C {
  postgresBackend(cfg);
  if (cfg.backend === 'postgres' && cfg.redisClusterNodes?.length)
    throw new ConfigError('--redis-cluster-nodes (REDIS_CLUSTER_NODES) is for --backend redis: unset it with --backend postgres');
  return cfg;
}

/** The PostgreSQL target of a checked config, or undefined on Redis. */
export function postgresTarget(cfg: BackendConfig): PostgresTarget | undefined {
  if (cfg.backend !== 'postgres') return undefined;
  checkedBackend(cfg);
  return { databaseUrl: cfg.databaseUrl!, schema: cfg.pgSchema, ownSchema: cfg.pgOwnSchema, migrate: cfg.migrate ?? false };
}
