// Owns how queuelens's workers and commands reach BullMQ on PostgreSQL (`--backend postgres`): the connection BullMQ's
// classes get (BullMQ builds its pool from it, pinned to the schema), a one-shot readiness check with sentences a
// user can act on (and BullMQ's own migrations when --migrate asks for them), queuelens's own pool, and a backend
// whose statements all run inside one transaction of that pool (the dead letters' atomic copy and redrive).
import { FlowProducer, PostgresQueueBackend, Queue, quoteSchemaName, runMigrations, SchemaMigrationRequiredError, assertSchemaCompatibility } from 'bullmq';
import type { BackendFactory, QueueOptions, WorkerOptions, Processor } from 'bullmq';
import { createPostgresBackend, Worker } from 'bullmq';
import pg from 'pg';
import type { PostgresTarget } from '../config/backend-options.js';
import { redactString, safeUrl } from '../log/redact.js';
import { EVENTS_MAX_LEN } from './queue-defaults.js';
import { PostgresUnreachableError } from './postgres-unreachable.js';

export { PostgresUnreachableError } from './postgres-unreachable.js';

export type { PostgresTarget } from '../config/backend-options.js';

/** BullMQ's `connection` option: a config object, so BullMQ pins the schema in every connection's search_path. */
export function bullConnection(t: PostgresTarget, max = 4): { connectionString: string; schema: string; max: number } {
  return { connectionString: t.databaseUrl, schema: t.schema, max };
}

type PgQueueOptions = Omit<QueueOptions, 'connection'>;
type PgWorkerOptions = Omit<WorkerOptions, 'connection'>;

/**
 * A BullMQ Queue on PostgreSQL (typed as the Redis-default Queue the rest of queuelens handles), with queuelens's event
 * retention. BullMQ ignores `prefix` on PostgreSQL (the schema is the namespace); jobs carry it, so it is the schema:
 * what webhook delivery ids and dead letters name.
 */
export function postgresQueue(t: PostgresTarget, name: string, opts: PgQueueOptions = {}): Queue {
  const q = new Queue(
    name,
    { streams: { events: { maxLen: EVENTS_MAX_LEN } }, ...opts, prefix: t.schema, connection: bullConnection(t) },
    createPostgresBackend,
  );
  // An idle pooled connection that drops (a restart) is replaced at the next query, which is where a failure shows;
  // unheard, BullMQ would print the pool's error to stderr.
  q.on('error', () => undefined);
  return q as unknown as Queue;
}

export function postgresWorker(t: PostgresTarget, name: string, processor: Processor | null, opts: PgWorkerOptions = {}): Worker {
  return new Worker(name, processor, { ...opts, prefix: t.schema, connection: bullConnection(t) }, createPostgresBackend) as unknown as Worker;
}

export function postgresFlowProducer(t: PostgresTarget): FlowProducer {
  return new FlowProducer({ connection: bullConnection(t) }, createPostgresBackend) as unknown as FlowProducer;
}

/** queuelens's own pool on the database, its sessions named `name` and resolving BullMQ's names in its schema. */
export function createPgPool(t: PostgresTarget, name: string, max = 2): pg.Pool {
  const pool = new pg.Pool({
    connectionString: t.databaseUrl,
    max,
    application_name: name,
    options: `-c search_path=${quoteSchemaName(t.schema)}`,
    connectionTimeoutMillis: 10_000,
  });
  // An idle connection that drops is replaced by the next checkout; the pool must not crash the process over it.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Connects once (no retries), runs BullMQ's migrations when `t.migrate` allows it, and checks that BullMQ's schema is
 * there and compatible. For one-shot commands and start-up: without it a missing schema shows up as BullMQ's
 * sentence about `migrate: true`, which names no option of queuelens.
 */
export async function preparePostgres(t: PostgresTarget, timeoutMs = 5_000): Promise<void> {
  const client = new pg.Client({ connectionString: t.databaseUrl, connectionTimeoutMillis: timeoutMs, application_name: 'queuelens check' });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new PostgresUnreachableError(
      `PostgreSQL is unreachable at ${safeUrl(t.databaseUrl)} (${redactString((err as Error).message)}): start it, or point --database-url (DATABASE_URL) at it.`,
    );
  }
  try {
    if (t.migrate) await runMigrations(client, t.schema);
    else await assertSchemaCompatibility(client, t.schema);
  } catch (err) {
    if (err instanceof SchemaMigrationRequiredError)
      throw new PostgresUnreachableError(
        `BullMQ's schema ${JSON.stringify(t.schema)} does not exist in ${safeUrl(t.databaseUrl)}: create it once with \`queuelens worker --backend postgres --migrate\` (QUEUELENS_PG_MIGRATE=true, a role allowed to create it), or point --pg-schema (QUEUELENS_PG_SCHEMA) at the schema your producers use.`,
      );
    throw new PostgresUnreachableError(`PostgreSQL at ${safeUrl(t.databaseUrl)}: ${redactString((err as Error).message)}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** An identifier quoted for SQL (a schema name may hold any character pg allows). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Milliseconds since the epoch by the database's clock: every worker's dead letters are stamped by one clock. */
export async function databaseNow(db: pg.Pool | pg.PoolClient): Promise<number> {
  const { rows } = await db.query<{ now: string }>('SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS now');
  return Number(rows[0]!.now);
}

/**
 * Runs `fn` in one transaction on a client of `pool` (whose search_path is BullMQ's schema): committed when it
 * returns, rolled back when it throws or returns `{ rollback: value }`.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T | Rollback<T>>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A connection lost mid-transaction (a restart, pg_terminate_backend) fails the query in flight; without a listener
  // the client's 'error' event would also crash the process.
  const onError = (err: Error) => (broken = err);
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    if (out instanceof Rollback) {
      await client.query('ROLLBACK');
      return out.value;
    }
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => (broken = e));
    throw err;
  } finally {
    // A client whose connection broke mid-transaction goes, rather than back to the pool.
    client.off('error', onError);
    client.release(broken);
  }
}

export class Rollback<T> {
  constructor(readonly value: T) {}
}

/**
 * A BullMQ backend factory whose queues run every statement on `client`, inside the transaction the caller holds:
 * BullMQ's own functions (add_job, remove, …) then commit or roll back with queuelens's own rows. BullMQ's pool-less
 * backend (a PostgresQueueBackend that does not own its connection) needs only `query`; nothing here listens.
 */
export function transactionBackend(client: pg.PoolClient, schema: string): BackendFactory {
  const connection = {
    schema,
    pool: { query: (text: string, params?: unknown[]) => client.query(text, params) },
    waitUntilReady: async () => undefined,
    isClosing: undefined,
    on: () => connection,
  };
  return ((name: string, opts: unknown) => new PostgresQueueBackend(connection as never, name, opts as never, false)) as unknown as BackendFactory;
}

/** A Queue whose every statement runs in the caller's transaction on `client` (it never writes the queue's meta). */
export function transactionQueue(client: pg.PoolClient, schema: string, name: string, opts: Pick<PgQueueOptions, 'telemetry'> = {}): Queue {
  return new Queue(name, { ...opts, prefix: schema, connection: {} as never, skipMetasUpdate: true }, transactionBackend(client, schema)) as unknown as Queue;
}

/**
 * Inside the caller's transaction: creates the own schema when missing, holding until that transaction ends the
 * advisory lock every creator of this schema takes (the sidecar's event follower, postgres/accounting-store.ts, and the workers' dead letters): one creates
 * it, the others find it. Its DDL after this is serialized with theirs too.
 */
export async function createOwnSchema(c: pg.ClientBase, ownSchema: string): Promise<void> {
  await c.query("SELECT pg_advisory_xact_lock(hashtext('queuelens:schema:' || $1))", [ownSchema]);
  const exists = await c.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [ownSchema]);
  if (exists.rowCount === 0) await c.query(`CREATE SCHEMA ${pg.escapeIdentifier(ownSchema)}`);
}
