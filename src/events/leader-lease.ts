// Owns the leader lease of the event reader: one replica per Redis (per shard) reads the streams.
// SET NX PX to take it, a compare-and-set script to renew it, released on shutdown or when the replica holds
// more than its share of shards. Every acquisition first takes a generation number (INCR of one counter for
// all shards); the reader's scripts store it in each queue's state and refuse lower ones, so a replica that
// was paused past its lease cannot write after it wakes, even where the lease key sits in another Cluster slot.
// The INCR need not be atomic with the SET: a term whose number is lower than a newer term's is simply fenced
// out by the scripts, and a later attempt takes a higher number.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../log/logger.js';
import type { RedisClient } from '../redis/connection.js';
import { generationAdvance, leaseRelease, leaseRenew } from '../redis/lua-scripts.js';
import { bindScript, type CallOf } from '../redis/scripts.js';
import { LeaseTicks } from '../util/lease-ticks.js';

export interface LeaderLeaseOptions {
  client: RedisClient;
  key: string;
  /** Counter of generations (ownKeys.eventsGeneration). */
  generationKey: string;
  /** Asked before each acquisition attempt (default: always); sharded readers take only their fair share. */
  mayAcquire?: () => boolean;
  leaseMs: number;
  log: Logger;
  /** Called when leadership is gained (true) or lost (false). */
  onChange: (leader: boolean) => void;
}

export class LeaderLease {
  private term = '';
  private gen = 0;
  private held = false;
  /** When the last successful acquire or renewal was SENT: Redis set the expiry no earlier than that. */
  private lastRenewedAt = 0;
  private readonly ticks: LeaseTicks;
  private ticking = false;
  private closed = false;
  private readonly client: RedisClient;
  private readonly renew: CallOf<typeof leaseRenew>;
  private readonly releaseScript: CallOf<typeof leaseRelease>;
  private readonly advance: CallOf<typeof generationAdvance>;

  constructor(private readonly opts: LeaderLeaseOptions) {
    this.client = opts.client;
    this.renew = bindScript(opts.client, leaseRenew);
    this.releaseScript = bindScript(opts.client, leaseRelease);
    this.advance = bindScript(opts.client, generationAdvance);
    this.ticks = new LeaseTicks({ leaseMs: opts.leaseMs, held: () => this.held, step: () => this.tick() });
  }

  /**
   * Held and surely not expired yet: a renewal that hangs (stalled link, hung Redis) cannot keep this
   * true past the lease, by which time a standby may already hold it.
   */
  get isLeader(): boolean {
    return this.held && Date.now() - this.lastRenewedAt < this.opts.leaseMs;
  }

  /** The token of the current term ('' when not leader); a new one for every acquisition. */
  get token(): string {
    return this.isLeader ? this.term : '';
  }

  /** The fencing generation of the current term (0 when not leader). */
  get generation(): number {
    return this.held ? this.gen : 0;
  }

  /**
   * Tries at once, then on a timer: a holder renews every third of the lease, a standby retries every
   * fifth, so a dead leader is replaced within lease + lease/5. After an error (Redis not reachable yet,
   * or gone) it retries within 250 ms.
   */
  start(): void {
    if (!this.closed) this.ticks.start();
  }

  /** One acquire-or-renew step; false when Redis could not be asked. */
  private async tick(): Promise<boolean> {
    if (this.ticking || this.closed) return true;
    this.ticking = true;
    try {
      const sentAt = Date.now();
      if (this.held) {
        if (await this.renew({ key: this.opts.key, token: this.term, ms: this.opts.leaseMs })) this.lastRenewedAt = sentAt;
        else this.lose('lease taken over');
      } else if (this.opts.mayAcquire?.() ?? true) {
        // Only a free lease costs a generation number.
        if ((await this.client.exists(this.opts.key)) === 1) return true;
        const gen = await this.client.incr(this.opts.generationKey);
        const token = `${gen}:${hostname()}:${process.pid}:${randomUUID()}`;
        const ok = await this.client.set(this.opts.key, token, 'PX', this.opts.leaseMs, 'NX');
        if (ok === 'OK' && this.closed) await this.releaseScript({ key: this.opts.key, token });
        else if (ok === 'OK') {
          this.term = token;
          this.gen = gen;
          this.held = true;
          this.lastRenewedAt = sentAt;
          this.opts.log.info({ lease: this.opts.key }, 'became event reader leader');
          this.opts.onChange(true);
        }
      }
      return true;
    } catch (err) {
      // Cannot reach Redis: the lease may expire under us; stop reading once it surely has.
      if (this.held && Date.now() - this.lastRenewedAt >= this.opts.leaseMs) this.lose('lease renewal failed');
      this.opts.log.debug({ err: (err as Error).message }, 'lease step failed');
      return false;
    } finally {
      this.ticking = false;
    }
  }

  /**
   * A queue's state carries generation `stored`, above this term's, while this replica holds the lease: the
   * counter was lost (evicted, deleted) after older terms wrote their numbers. Takes a number above `stored`,
   * then checks the lease is still held before using it (a replica paused past its lease loses it instead, and
   * the number it took only fences it out further). The term goes on under the new number: onChange(true) makes
   * the reader reload every queue's state from Redis, so what was read but not committed is read again once.
   */
  async advanceGeneration(stored: number): Promise<void> {
    if (!this.held) return;
    const gen = await this.advance({ counterKey: this.opts.generationKey, floor: stored });
    const sentAt = Date.now();
    if (!(await this.renew({ key: this.opts.key, token: this.term, ms: this.opts.leaseMs }))) {
      this.lose('lease taken over');
      return;
    }
    this.lastRenewedAt = sentAt;
    this.opts.log.warn(
      { lease: this.opts.key, from: this.gen, to: gen, stored },
      'event state carries a generation above the counter (counter lost?); took a higher one',
    );
    this.gen = gen;
    this.opts.onChange(true);
  }

  /** The fenced writes found the lease gone. */
  lost(reason: string): void {
    if (this.held) this.lose(reason);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ticks.stop();
    await this.release();
  }

  /** Gives the lease up now (shutdown, or a shard over this replica's share), so another replica takes it at once. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    this.opts.onChange(false);
    try {
      await this.releaseScript({ key: this.opts.key, token: this.term });
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'could not release the event reader lease; it expires by itself');
    }
  }

  private lose(reason: string): void {
    this.held = false;
    this.opts.log.warn({ lease: this.opts.key, reason }, 'lost event reader leadership');
    this.opts.onChange(false);
  }
}
