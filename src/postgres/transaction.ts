// Owns how queuelens runs a transaction on PostgreSQL: one pooled connection, BEGIN with its modes and SET LOCAL
// settings (a statement timeout always), COMMIT or ROLLBACK, and a connection that failed is never reused.
import type pg from 'pg';

export interface TransactionOptions {
  /** statement_timeout of every statement in it, ms. */
  timeoutMs: number;
  /** Modes after BEGIN, e.g. 'READ ONLY' or 'ISOLATION LEVEL REPEATABLE READ READ ONLY'. */
  mode?: string;
  /** Further SET LOCAL settings (constants of ours, never user input), e.g. { jit: 'off' }. */
  settings?: Readonly<Record<string, string>>;
}

export async function inTransaction<T>(pool: pg.Pool, o: TransactionOptions, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | boolean = false;
  // A checked-out client has no listener of the pool's: a connection lost mid-statement would be an uncaught 'error'.
  const onError = (err: Error): void => void (broken = err);
  client.on('error', onError);
  try {
    const settings = Object.entries({ statement_timeout: String(Math.max(1, Math.floor(o.timeoutMs))), ...o.settings });
    await client.query(`BEGIN${o.mode ? ` ${o.mode}` : ''}; ${settings.map(([k, v]) => `SET LOCAL ${k} = ${v}`).join('; ')}`);
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => (broken = true));
    throw err;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}
