// Owns where `queuelens demo --backend postgres` writes in a PostgreSQL that may be a developer's own: BullMQ's tables
// in the schema `queuelens_demo` and queuelens's own in `queuelens_demo_sidecar`, so the demo never touches a `bullmq`
// schema. One demo at a time per database: a session advisory lock held by a connection of the demo, which the server
// releases when that process dies, so the next start can drop what a killed run left behind at once. The demo's two
// schemas are dropped on exit unless --keep.
import pg from 'pg';
import { quoteIdent } from '../jobs/postgres-store.js';
import { DemoBusyError, type DemoNamespace } from './demo-namespace.js';

export const DEMO_PG_SCHEMA = 'queuelens_demo';
export const DEMO_PG_OWN_SCHEMA = 'queuelens_demo_sidecar';
const SCHEMAS = [DEMO_PG_SCHEMA, DEMO_PG_OWN_SCHEMA];

async function dropDemoSchemas(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE nspname = ANY($1)', [SCHEMAS]);
  for (const { nspname } of rows) await client.query(`DROP SCHEMA IF EXISTS ${quoteIdent(nspname)} CASCADE`);
  return rows.length;
}

/** Claims the demo's schemas of the database at `url`; throws DemoBusyError when another demo holds them. */
export async function claimPostgresDemoNamespace(url: string): Promise<DemoNamespace> {
  const client = new pg.Client({ connectionString: url, application_name: 'queuelens demo', connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  await client.connect();
  const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', ['queuelens demo']);
  if (!rows[0]!.ok) {
    await client.end().catch(() => undefined);
    throw new DemoBusyError(
      'another queuelens demo is running against this PostgreSQL (it holds the advisory lock "queuelens demo"); stop it first, or give this one another database with --database-url',
    );
  }
  const staleRemoved = await dropDemoSchemas(client);
  const done = async (remove: boolean) => {
    const n = remove ? await dropDemoSchemas(client) : 0;
    await client.end().catch(() => undefined);
    return n;
  };
  return { staleRemoved, removeKeys: () => done(true), release: async () => void (await done(false)) };
}
