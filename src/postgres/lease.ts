// Owns the fenced leader lease of the PostgreSQL event follower: one row per followed BullMQ schema in the own schema
// (`event_lease`: holder, fence, expires_at on the database clock). A replica takes it only when it expired, and every
// takeover increments the fence; the holder renews it every third of the lease. Writes of the leader carry the fence
// they started under and commit only while it is still the row's (accounting-store.ts): a leader paused past its
// lease, or cut off from the database, cannot commit after another replica took over. An advisory lock would not do:
// it belongs to a session, and a stalled but connected leader would keep it.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import type { Logger } from '../log/logger.js';
import { LeaseTicks } from '../util/lease-ticks.js';

export interface PgLeaseOptions {
  pool: pg.Pool;
  ownSchema: string;
  /** The BullMQ schema followed: one lease per schema of a database. */
  source: string;
  leaseMs: number;
  log: Logger;
  /** Called when leadership is gained (true) or lost (false). */
  onChange: (leader: boolean) => void;
}

export class PgLease {
  readonly holder = `${hostname()}:${process.pid}:${randomUUID()}`;
  private held = false;
  private fenceValue = 0n;
  /** When the last successful acquire or renewal was SENT: the database set the expiry no earlier than that. */
  private lastRenewedAt = 0;
  private readonly ticks: LeaseTicks;
  private ticking = false;
  private closed = false;
  private readonly table: string;

  constructor(private readonly o: PgLeaseOptions) {
    this.table = `${pg.escapeIdentifier(o.ownSchema)}.event_lease`;
    this.ticks = new LeaseTicks({ leaseMs: o.leaseMs, held: () => this.held, step: () => this.tick() });
  }

  /** Held and surely not expired yet (a renewal that hangs cannot keep this true past the lease). */
  get isLeader(): boolean {
    return this.held && Date.now() - this.lastRenewedAt < this.o.leaseMs;
  }

  /** The fence of the current term (0 when not held). */
  get fence(): bigint {
    return this.held ? this.fenceValue : 0n;
  }

  /** Tries at once, then renews every third of the lease (a standby tries every fifth); 250 ms after an error (LeaseTicks). */
  start(): void {
    if (!this.closed) this.ticks.start();
  }

  private async tick(): Promise<boolean> {
    if (this.ticking || this.closed) return true;
    this.ticking = true;
    try {
      const sentAt = Date.now();
      if (this.held) {
        const r = await this.query(
          `UPDATE ${this.table} SET expires_at = clock_timestamp() + $3 * interval '1 millisecond'
            WHERE source = $1 AND fence = $2 AND holder = $4`,
          [this.o.source, this.fenceValue.toString(), this.o.leaseMs, this.holder],
        );
        if (r.rowCount === 1) this.lastRenewedAt = sentAt;
        else this.lose('lease taken over');
      } else {
        const r = await this.query<{ fence: string }>(
          `INSERT INTO ${this.table} AS l (source, holder, fence, expires_at)
           VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond')
           ON CONFLICT (source) DO UPDATE SET holder = EXCLUDED.holder, fence = l.fence + 1, expires_at = EXCLUDED.expires_at
            WHERE l.expires_at < clock_timestamp()
           RETURNING fence::text AS fence`,
          [this.o.source, this.holder, this.o.leaseMs],
        );
        const got = r.rows[0];
        if (got && this.closed) await this.releaseFence(BigInt(got.fence));
        else if (got) {
          this.fenceValue = BigInt(got.fence);
          this.held = true;
          this.lastRenewedAt = sentAt;
          this.o.log.info({ schema: this.o.source, fence: got.fence }, 'became event reader leader');
          this.o.onChange(true);
        }
      }
      return true;
    } catch (err) {
      // Cannot reach the database: the lease may expire under us; stop reading once it surely has.
      if (this.held && Date.now() - this.lastRenewedAt >= this.o.leaseMs) this.lose('lease renewal failed');
      this.o.log.debug({ err: (err as Error).message }, 'lease step failed');
      return false;
    } finally {
      this.ticking = false;
    }
  }

  /**
   * A fenced commit under `fence` found another fence: leadership of that term is gone. A commit of an earlier term can
   * come back after this replica lost the lease and took it again (a pass that waited out a lease under CPU
   * starvation): it says nothing about the term held now, which stays.
   */
  lost(reason: string, fence: bigint): void {
    if (this.held && fence === this.fenceValue) this.lose(reason);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ticks.stop();
    await this.release();
  }

  /** Gives the lease up now (shutdown), so another replica takes it without waiting for the expiry. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    this.o.onChange(false);
    await this.releaseFence(this.fenceValue).catch((err: Error) =>
      this.o.log.warn({ err: err.message }, 'could not release the event reader lease; it expires by itself'),
    );
  }

  private async releaseFence(fence: bigint): Promise<void> {
    await this.query(`UPDATE ${this.table} SET expires_at = '-infinity' WHERE source = $1 AND fence = $2`, [this.o.source, fence.toString()]);
  }

  private lose(reason: string): void {
    this.held = false;
    this.o.log.warn({ schema: this.o.source, reason }, 'lost event reader leadership');
    this.o.onChange(false);
  }

  /** One statement, at most a third of the lease (a hung database cannot hold a renewal past the lease). */
  private async query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    const client = await this.o.pool.connect();
    let broken: Error | undefined;
    // Checked out, the client has no listener of the pool's: a lost connection must not be an uncaught 'error'.
    const onError = (err: Error): void => void (broken = err);
    client.on('error', onError);
    try {
      return await client.query<R>({ text, values, query_timeout: Math.max(1, Math.ceil(this.o.leaseMs / 3)) } as pg.QueryConfig);
    } catch (err) {
      broken = err as Error;
      throw err;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }
}
