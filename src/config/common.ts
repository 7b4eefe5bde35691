// Options shared by every subcommand that talks to Redis or logs.
import { parseClusterNode } from '../redis/connection.js';
import { OWN_PREFIX_DEFAULT } from '../redis/keys.js';
import { clusterPrefixProblem } from '../redis/slots.js';
import { ConfigError, option, parse } from './options.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const redisUrlOption = option({
  name: 'redis-url',
  env: 'REDIS_URL',
  arg: '<url>',
  description: 'Redis to read, redis:// or rediss:// (TLS); may carry a user and password',
  default: 'redis://127.0.0.1:6379',
  sensitive: true,
  parse: parse.url(['redis:', 'rediss:']),
});

export const redisClusterNodesOption = option({
  name: 'redis-cluster-nodes',
  env: 'REDIS_CLUSTER_NODES',
  arg: '<list>',
  description: 'Redis Cluster seed nodes host:port,...; credentials and TLS come from --redis-url (unset = standalone)',
  parse: (raw: string) => parse.list(raw).map((n) => (parseClusterNode(n), n.trim())),
});

export const logLevelOption = option({
  name: 'log-level',
  env: 'LOG_LEVEL',
  arg: '<level>',
  description: `log level: ${LOG_LEVELS.join(', ')}`,
  default: 'info',
  parse: parse.oneOf(LOG_LEVELS),
});

export const prefixesOption = option({
  name: 'prefixes',
  env: 'QUEUELENS_PREFIXES',
  arg: '<list>',
  description: 'comma-separated BullMQ key prefixes to watch',
  default: 'bull',
  parse: (raw: string) => {
    const list = parse.list(raw);
    for (const p of list) if (/[\s*?[\]]/.test(p)) throw new Error(`prefix ${JSON.stringify(p)} may not contain spaces or glob characters (* ? [ ])`);
    return list;
  },
});

export const ownPrefixOption = option({
  name: 'own-prefix',
  env: 'QUEUELENS_OWN_PREFIX',
  arg: '<prefix>',
  description: 'key prefix of what queuelens stores in Redis (event accounting, cursors, leader lease, dead-letter markers); never a BullMQ prefix',
  default: OWN_PREFIX_DEFAULT,
  parse: (raw: string) => {
    const p = parse.string(raw);
    if (/[\s*?[\]{}]/.test(p)) throw new Error('expected a prefix without spaces, glob characters or braces');
    return p;
  },
});

/** --prefix of the worker-side commands (worker, enqueue, loadgen, dlq). */
export const prefixOption = option({
  name: 'prefix',
  env: 'QUEUELENS_PREFIX',
  arg: '<prefix>',
  description: 'BullMQ key prefix of the queues; with --redis-cluster-nodes it needs a hash tag, e.g. {bull}',
  default: 'bull',
  parse: (raw: string) => {
    if (/[\s*?[\]]/.test(raw) || raw === '') throw new Error('expected a non-empty prefix without spaces or glob characters (* ? [ ])');
    return raw;
  },
});

/** queuelens's own keys must never land inside the BullMQ prefix it works on. */
export function distinctPrefixes<C extends { prefix: string; ownPrefix: string }>(cfg: C): C {
  if (cfg.ownPrefix === cfg.prefix)
    throw new ConfigError(`invalid --own-prefix (QUEUELENS_OWN_PREFIX) ${JSON.stringify(cfg.ownPrefix)}: must differ from --prefix (QUEUELENS_PREFIX)`);
  return cfg;
}

/** On a Redis Cluster, a prefix without a hash tag would fail at the first BullMQ script: refuse it before connecting. */
export function clusterPrefix<C extends { prefix: string; redisClusterNodes?: string[] }>(cfg: C): C {
  const problem = cfg.redisClusterNodes?.length ? clusterPrefixProblem(cfg.prefix) : undefined;
  if (problem)
    throw new ConfigError(`invalid --prefix (QUEUELENS_PREFIX) ${JSON.stringify(cfg.prefix)} with --redis-cluster-nodes (REDIS_CLUSTER_NODES): ${problem}`);
  return cfg;
}

/** The stores BullMQ runs on. */
export const BACKENDS = ['redis', 'postgres'] as const;
export type BackendKind = (typeof BACKENDS)[number];

export const backendOption = option({
  name: 'backend',
  env: 'QUEUELENS_BACKEND',
  arg: '<redis|postgres>',
  description: "the store BullMQ runs on: redis, or postgres (BullMQ 6's PostgreSQL backend, with --database-url)",
  default: 'redis',
  parse: parse.oneOf(BACKENDS),
});

export const databaseUrlOption = option({
  name: 'database-url',
  env: 'DATABASE_URL',
  arg: '<url>',
  description:
    'PostgreSQL of --backend postgres, postgres://user@host:5432/db; TLS and the rest as pg reads them (?sslmode=require, sslrootcert=…), the password in the URL or PGPASSWORD',
  sensitive: true,
  parse: parse.url(['postgres:', 'postgresql:']),
});

/** A PostgreSQL schema name: any identifier pg can quote, but nothing that looks like a mistake. */
function schemaName(raw: string): string {
  if (raw.trim() !== raw || raw === '') throw new Error('expected a schema name without leading or trailing spaces');
  if (Buffer.byteLength(raw) > 63) throw new Error('expected a schema name of at most 63 bytes (PostgreSQL truncates longer identifiers)');
  if (raw.includes('\u0000')) throw new Error('expected a schema name without NUL');
  return raw;
}

export const pgSchemaOption = option({
  name: 'pg-schema',
  env: 'QUEUELENS_PG_SCHEMA',
  arg: '<schema>',
  description: "BullMQ's schema with --backend postgres (its connection.schema); exported as the prefix label",
  default: 'bullmq',
  parse: schemaName,
});

export const pgOwnSchemaOption = option({
  name: 'pg-own-schema',
  env: 'QUEUELENS_PG_OWN_SCHEMA',
  arg: '<schema>',
  description: "queuelens's own schema with --backend postgres (event lease, cursor, accounting), created by queuelens; never BullMQ's schema",
  default: 'queuelens',
  parse: schemaName,
});

export const pgStatementTimeoutOption = option({
  name: 'pg-statement-timeout',
  env: 'QUEUELENS_PG_STATEMENT_TIMEOUT',
  arg: '<seconds>',
  description: 'with --backend postgres, the longest a read may run (SET LOCAL statement_timeout); one that waits on a lock longer fails instead',
  default: '5',
  parse: parse.seconds(0.1, 600),
});

/** The PostgreSQL options of a command that can run on either backend. */
export const postgresOptions = [backendOption, databaseUrlOption, pgSchemaOption, pgOwnSchemaOption, pgStatementTimeoutOption] as const;

/**
 * --backend postgres needs a database; queuelens's own schema must not be BullMQ's. Redis needs nothing more.
 * Errors name the flag, its variable and what to do.
 */
export function postgresBackend<C extends { backend: BackendKind; databaseUrl?: string; pgSchema: string; pgOwnSchema: string }>(cfg: C): C {
  if (cfg.backend !== 'postgres') return cfg;
  if (cfg.databaseUrl === undefined)
    throw new ConfigError(
      '--backend postgres (QUEUELENS_BACKEND) needs --database-url (DATABASE_URL), e.g. postgres://queuelens@db.example:5432/app?sslmode=verify-full; the password may come from PGPASSWORD',
    );
  if (cfg.pgOwnSchema === cfg.pgSchema)
    throw new ConfigError(
      `invalid --pg-own-schema (QUEUELENS_PG_OWN_SCHEMA) ${JSON.stringify(cfg.pgOwnSchema)}: must differ from --pg-schema (QUEUELENS_PG_SCHEMA), BullMQ's schema, which queuelens never writes`,
    );
  return cfg;
}
