// queuelens's own schema on PostgreSQL is created by whichever part starts first: the sidecar's event follower
// (accounting-store.ts ensureOwnSchema) or a worker's dead letters (postgres-dead-letters.ts). Two sidecar replicas and
// a fleet of workers start at once in production: CREATE SCHEMA … IF NOT EXISTS alone is not race-free (two sessions
// both find it missing and one fails with 23505 on pg_namespace_nspname_index), so every creator must be serialized
// with every other. Ground truth: each start-up either succeeds or this test fails with the database's own error.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDeadLetters } from '../src/dead-letters/postgres-dead-letters.js';
import { preparePostgres, type PostgresTarget } from '../src/jobs/postgres-store.js';
import { ensureOwnSchema } from '../src/postgres/accounting-store.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';

describe("queuelens's own schema on PostgreSQL", () => {
  let server: TestPostgres;
  let pool: pg.Pool;

  beforeAll(async () => {
    server = await startTestPostgres();
    await preparePostgres({ databaseUrl: server.url, schema: 'bullmq', ownSchema: 'queuelens', migrate: true });
    pool = server.pool(8);
  });
  afterAll(async () => {
    await pool?.end().catch(() => undefined);
    await server?.stop();
  });

  it('is created once when sidecars and workers all start at the same moment: none of them fails', async () => {
    // Each round a fresh schema, created by three sidecars' followers and three workers' dead letters at once.
    for (let round = 0; round < 15; round++) {
      const ownSchema = `ql_race_${round}`;
      const target: PostgresTarget = { databaseUrl: server.url, schema: 'bullmq', ownSchema, migrate: false };
      const dead = Array.from({ length: 3 }, () => new PostgresDeadLetters({ target, queue: 'race' }));
      const starts = await Promise.allSettled([
        ...Array.from({ length: 3 }, () => ensureOwnSchema(pool, ownSchema)),
        // A sweep of a queue with no failed job does nothing but create the dead-letter tables.
        ...dead.map((d) => d.sweep()),
      ]).finally(() => Promise.all(dead.map((d) => d.close())));
      const failures = starts.flatMap((s) => (s.status === 'rejected' ? [(s.reason as Error).message] : []));
      expect({ round, failures }).toEqual({ round, failures: [] });
      const { rows } = await pool.query<{ t: string }>(
        "SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1",
        [ownSchema],
      );
      expect(rows.map((r) => r.t)).toEqual(
        expect.arrayContaining(['dead_letter_marker', 'dead_letter_secret', 'event_accounting', 'event_lease', 'event_reader']),
      );
    }
  });
});
