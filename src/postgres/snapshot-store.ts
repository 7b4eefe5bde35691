// Owns where the leader's collection is shared on PostgreSQL (collector/shared-snapshot.ts): one row per BullMQ schema
// in queuelens's own schema (table collection_snapshot, created with the others by accounting-store.ts), stamped and
// expired on the database's clock, so the replicas that are not leader render it instead of each reading BullMQ's
// tables. Not fenced: a deposed leader's last write is a few ms old and expires like any other.
import pg from 'pg';
import type { SnapshotStore } from '../collector/shared-snapshot.js';

const NOW_MS = '(extract(epoch FROM clock_timestamp()) * 1000)::bigint';

export class PostgresSnapshotStore implements SnapshotStore {
  private readonly table: string;

  constructor(
    private readonly pool: pg.Pool,
    ownSchema: string,
    /** BullMQ's schema the snapshot is of. */
    private readonly source: string,
  ) {
    this.table = `${pg.escapeIdentifier(ownSchema)}.collection_snapshot`;
  }

  async save(encoded: string, ttlMs: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.table} (source, encoded, expires_ms) VALUES ($1, $2, ${NOW_MS} + $3::bigint)
       ON CONFLICT (source) DO UPDATE SET encoded = EXCLUDED.encoded, expires_ms = EXCLUDED.expires_ms`,
      [this.source, encoded, Math.max(1, Math.round(ttlMs))],
    );
  }

  async load(): Promise<{ encoded: string | null; nowMs: number }> {
    const { rows } = await this.pool.query<{ encoded: string | null; now_ms: string }>(
      `SELECT n.now_ms::text AS now_ms, (SELECT c.encoded FROM ${this.table} c WHERE c.source = $1 AND c.expires_ms > n.now_ms) AS encoded
         FROM (SELECT ${NOW_MS} AS now_ms) n`,
      [this.source],
    );
    return { encoded: rows[0]?.encoded ?? null, nowMs: Number(rows[0]?.now_ms ?? Date.now()) };
  }

  async now(): Promise<number> {
    const { rows } = await this.pool.query<{ now_ms: string }>(`SELECT ${NOW_MS}::text AS now_ms`);
    return Number(rows[0]!.now_ms);
  }

  async clear(): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.table} WHERE source = $1`, [this.source]);
  }
}
