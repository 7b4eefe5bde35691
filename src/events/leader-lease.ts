// Owns the leader lease of the event reader: one replica per Redis (per shard) reads the streams.
// SET NX PX to take it, a compare-and-set script to renew it, released on shutdown. The token it holds also
// fences every write of the reader (the scripts check it), so a replica that was paused past its lease
// cannot write after it wakes.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from '../log/logger.js';
import { defineScript } from '../redis/scripts.js';

type LeaseClient = Redis & {
  leaseRenew(key: string, token: string, ms: number): Promise<number>;
  leaseRelease(key: string, token: string): Promise<number>;
};

export interface LeaderLeaseOptions {
  client: Redis;
  key: string;
  leaseMs: number;
  log: Logger;
  /** Called when leadership is gained (true) or lost (false). */
  onChange: (leader: boolean) => void;
}

export class LeaderLease {
  private term = '';
  private held = false;
  /** When the last successful acquire or renewal was SENT: Redis set the expiry no earlier than that. */
  private lastRenewedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private closed = false;
  private readonly client: LeaseClient;

  constructor(private readonly opts: LeaderLeaseOptions) {
    defineScript(opts.client, 'leaseRenew', 'lease-renew-1.lua');
    defineScript(opts.client, 'leaseRelease', 'lease-release-1.lua');
    this.client = opts.client as LeaseClient;
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

  /**
   * Tries at once, then on a timer: a holder renews every third of the lease, a standby retries every
   * fifth, so a dead leader is replaced within lease + lease/5. After an error (Redis not reachable yet,
   * or gone) it retries within 250 ms.
   */
  start(): void {
    if (this.timer || this.closed) return;
    const tick = (): void => {
      void this.tick().then((ok) => {
        if (this.closed) return;
        const every = this.held ? this.opts.leaseMs / 3 : this.opts.leaseMs / 5;
        this.timer = setTimeout(tick, ok ? every : Math.min(250, every));
        this.timer.unref();
      });
    };
    tick();
  }

  /** One acquire-or-renew step; false when Redis could not be asked. */
  private async tick(): Promise<boolean> {
    if (this.ticking || this.closed) return true;
    this.ticking = true;
    try {
      const sentAt = Date.now();
      if (this.held) {
        const ok = await this.client.leaseRenew(this.opts.key, this.term, this.opts.leaseMs);
        if (ok === 1) this.lastRenewedAt = sentAt;
        else this.lose('lease taken over');
      } else {
        const token = `${hostname()}:${process.pid}:${randomUUID()}`;
        const ok = await this.client.set(this.opts.key, token, 'PX', this.opts.leaseMs, 'NX');
        if (ok === 'OK' && this.closed) await this.client.leaseRelease(this.opts.key, token);
        else if (ok === 'OK') {
          this.term = token;
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

  /** The fenced writes found the lease gone. */
  lost(reason: string): void {
    if (this.held) this.lose(reason);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    if (!this.held) return;
    this.held = false;
    try {
      await this.client.leaseRelease(this.opts.key, this.term);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'could not release the event reader lease; it expires by itself');
    }
    this.opts.onChange(false);
  }

  private lose(reason: string): void {
    this.held = false;
    this.opts.log.warn({ lease: this.opts.key, reason }, 'lost event reader leadership');
    this.opts.onChange(false);
  }
}
