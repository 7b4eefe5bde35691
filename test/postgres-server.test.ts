// The private PostgreSQL the BullMQ-on-PostgreSQL tests run against: it starts as a non-root user, survives a
// SIGKILL with its committed data, and leaves nothing behind.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';

describe('test PostgreSQL server', () => {
  let server: TestPostgres;
  beforeAll(async () => {
    server = await startTestPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('runs as a user other than root, on loopback', async () => {
    const pool = server.pool(1);
    const { rows } = await pool.query<{ setting: string }>("SELECT setting FROM pg_settings WHERE name = 'listen_addresses'");
    expect(rows[0]!.setting).toBe('127.0.0.1');
    const owner = await pool.query<{ usesuper: boolean }>('SELECT usesuper FROM pg_user WHERE usename = current_user');
    expect(owner.rows[0]!.usesuper).toBe(true);
  });

  it('keeps committed rows across a SIGKILL and a restart, and loses the open transaction', async () => {
    const pool = server.pool(2);
    await pool.query('CREATE TABLE t (v int)');
    await pool.query('INSERT INTO t VALUES (1), (2)');
    const open = await pool.connect();
    open.on('error', () => undefined);
    await open.query('BEGIN');
    await open.query('INSERT INTO t VALUES (3)');
    await server.kill();
    await expect(pool.query('SELECT 1')).rejects.toThrow();
    open.release(true);
    await server.restart();
    const { rows } = await server.pool(1).query<{ v: number }>('SELECT v FROM t ORDER BY v');
    expect(rows.map((r) => r.v)).toEqual([1, 2]);
  });

  it('stop() removes the data directory', async () => {
    const other = await startTestPostgres();
    expect(existsSync(other.dir)).toBe(true);
    await other.stop();
    expect(existsSync(other.dir)).toBe(false);
  });
});
