// Options of the worker-side commands (worker, enqueue, dlq, loadgen, demo) that choose where BullMQ stores the
// queues: Redis (the default, configured by the Redis options as before) or BullMQ 6's PostgreSQL backend.
import { ConfigError, option, parse } from './options.js';

export const BACKENDS = ['redis', 'postgres'] as const;
export type BackendName = (typeof BACKENDS)[number];

export const backendOption = option({
  name: 'backend',
  env: 'QUEUELENS_BACKEND',
  arg: '<name>',
  description: `where BullMQ keeps the queues: ${BACKENDS.join(' or ')} (BullMQ 6's PostgreSQL backend, with --database-url)`,
  default: 'redis',
  parse: parse.oneOf(BACKENDS),
});

export const databaseUrlOption = option({
  name: 'database-url',
  env: 'DATABASE_URL',
  arg: '<url>',
  description: 'PostgreSQL of --backend postgres, postgres://user:password@host:5432/db (?sslmode=require for TLS); the password is never logged',
  sensitive: true,
  parse: parse.url(['postgres:', 'postgresql:']),
});

export const pgSchemaOption = option({
  name: 'pg-schema',
  env: 'QUEUELENS_PG_SCHEMA',
  arg: '<schema>',
  description: "PostgreSQL schema of BullMQ's tables with --backend postgres (BullMQ's `connection.schema`)",
  default: 'bullmq',
  parse: schemaName,
});

export const pgOwnSchemaOption = option({
  name: 'pg-own-schema',
  env: 'QUEUELENS_PG_OWN_SCHEMA',
  arg: '<schema>',
  description: "with --backend postgres: queuelens's own schema (dead-letter markers and held secrets), created on first use; never BullMQ's",
  default: 'queuelens',
  parse: schemaName,
});

export const migrateOption = option({
  name: 'migrate',
  env: 'QUEUELENS_PG_MIGRATE',
  description: "with --backend postgres: create or upgrade BullMQ's schema (BullMQ's own migrations) before starting; needs a role allowed to",
  default: 'false',
  parse: parse.boolean,
});

/** The backend options of a command, in the order --help lists them. */
export const backendOptions = [backendOption, databaseUrlOption, pgSchemaOption, pgOwnSchemaOption] as const;

/** Where BullMQ's PostgreSQL backend keeps the queues. */
export interface PostgresTarget {
  databaseUrl: string;
  /** BullMQ's schema (`connection.schema`). */
  schema: string;
  /** Whether this process may run BullMQ's migrations. */
  migrate: boolean;
  /** queuelens's own schema. */
  ownSchema: string;
}

/** A simple identifier, as BullMQ accepts for its schema (quoteSchemaName); queuelens's own schema follows the same rule. */
function schemaName(raw: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/.test(raw)) throw new Error('expected a schema name: a letter or _, then letters, digits, _ or $ (at most 63)');
  return raw;
}

/**
 * The PostgreSQL target of a resolved config, or undefined on Redis. `--backend postgres` needs --database-url, and
 * the Redis Cluster option makes no sense with it.
 */
export function postgresTarget(cfg: {
  backend: BackendName;
  databaseUrl?: string;
  pgSchema: string;
  pgOwnSchema: string;
  migrate?: boolean;
  redisClusterNodes?: string[];
}): PostgresTarget | undefined {
  if (cfg.backend !== 'postgres') return undefined;
  const problems: string[] = [];
  if (!cfg.databaseUrl) problems.push('--backend postgres needs --database-url (DATABASE_URL), e.g. postgres://app@127.0.0.1:5432/app');
  if (cfg.pgOwnSchema === cfg.pgSchema)
    problems.push(`--pg-own-schema (QUEUELENS_PG_OWN_SCHEMA) must differ from --pg-schema (QUEUELENS_PG_SCHEMA): queuelens never writes BullMQ's schema`);
  if (cfg.redisClusterNodes?.length) problems.push('--redis-cluster-nodes (REDIS_CLUSTER_NODES) is for --backend redis: unset it with --backend postgres');
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return { databaseUrl: cfg.databaseUrl!, schema: cfg.pgSchema, ownSchema: cfg.pgOwnSchema, migrate: cfg.migrate ?? false };
}

/** Validates the backend options of a resolved config (a ConfigError names what is missing) and returns it. */
export function checkedBackend<C extends Parameters<typeof postgresTarget>[0]>(cfg: C): C {
  postgresTarget(cfg);
  return cfg;
}
