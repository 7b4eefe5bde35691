// Owns queuelens's connections to a PostgreSQL: one pg.Pool per process, named, bounded in time on both sides (the
// server's statement_timeout and the client's own query timeout, for a server that stopped answering without closing
// the socket), and a description of where it points that never carries the password.
//
// The connection string goes to pg as it is, so everything a pg user expects works: sslmode, sslrootcert, sslcert and
// sslkey in the URL, PGPASSWORD, PGSSLMODE and the other PG* variables for what the URL leaves out.
import pg from 'pg';
import type { Logger } from '../log/logger.js';
import { safeUrl } from '../log/redact.js';

export interface PostgresPoolOptions {
  url: string;
  /** application_name of every session: shows who is connected in pg_stat_activity. Never a queue's name. */
  applicationName: string;
  /** Longest statement, ms: the server cancels it (statement_timeout) and the client gives up a little later. */
  statementTimeoutMs: number;
  max?: number;
  log?: Logger;
}

/** Sessions queuelens opens are named `queuelens <role>`, which no BullMQ worker (`<queue>` or `<queue>:w:<name>`) of a sane queue is. */
export function queuelensApplicationName(role: string): string {
  return `queuelens ${role}`;
}

export function createPostgresPool(o: PostgresPoolOptions): pg.Pool {
  const timeout = Math.max(1, Math.floor(o.statementTimeoutMs));
  const pool = new pg.Pool({
    connectionString: o.url,
    application_name: o.applicationName,
    max: o.max ?? 4,
    statement_timeout: timeout,
    // A server that hangs (SIGSTOP, a dead network path) answers nothing, not even the cancel: the client stops waiting.
    query_timeout: timeout + 2_000,
    connectionTimeoutMillis: Math.max(2_000, timeout),
    idle_in_transaction_session_timeout: Math.max(10_000, timeout * 2),
    idleTimeoutMillis: 30_000,
    keepAlive: true,
  });
  // A client whose server went away emits 'error': on the pool while idle, on the client itself while checked out
  // (pg-pool removes its own listener then). Unheard, either would crash the process when PostgreSQL restarts; the
  // query under way fails and says so, so these are only noted.
  const lost = (err: Error) => o.log?.debug({ err: redactedMessage(err) }, 'PostgreSQL connection lost');
  pool.on('error', lost);
  pool.on('connect', (client) => client.on('error', lost));
  return pool;
}

/** Where the URL points, for logs and errors: host, port and database, user masked, never the password. */
export function postgresWhere(url: string): string {
  try {
    const u = new URL(url);
    const host = u.hostname || new URLSearchParams(u.search).get('host') || process.env.PGHOST || 'localhost';
    const port = u.port || process.env.PGPORT || '5432';
    const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || process.env.PGDATABASE || '(default database)';
    return `${host}:${port}/${db}`;
  } catch {
    return safeUrl(url);
  }
}

/** An error message with any connection string in it masked. */
export function redactedMessage(err: unknown): string {
  return safeUrl(err instanceof Error ? err.message : String(err));
}
