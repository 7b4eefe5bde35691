// Owns the split of event reading among sidecar replicas: the queues are hashed into N shards, each with its
// own lease (one EventReader per shard), and every replica holds its share of them (N / live replicas). Replicas
// announce themselves in a sorted set with a heartbeat every third of the lease; one missing for a whole lease
// is gone. A replica over its share releases one shard per heartbeat (the others pick it up at once), a
// replica under it may take free ones, so a join or a departure rebalances within a few lease periods.
// Each shard's writes stay fenced by its term's generation (leader-lease.ts), whoever holds it.
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { startIntervalLoop, type IntervalLoop } from '../util/interval-loop.js';
import type { RedisClient } from '../redis/connection.js';
import { ownKeys, eventsMember } from '../redis/keys.js';
import { type QueueRef } from '../domain/queue-ref.js';
import { EventReader, EVENT_READER_DEFAULTS, type EventReaderOptions } from './event-reader.js';
import { LIFECYCLE_DEFAULTS, type QueueLifecycle } from './lifecycle.js';

export interface EventShardsOptions extends Omit<EventReaderOptions, 'shard' | 'mayAcquire' | 'isMine' | 'onLeadership'> {
  /** Shards of the queue set; every replica must use the same number. 1 = one leader reads everything. */
  shards: number;
  /** Carries the heartbeat (the sidecar's own connection). */
  client: RedisClient;
}

/** Stable shard of a queue: the same on every replica, spread evenly whatever the names look like. */
export function shardOf(q: QueueRef, shards: number): number {
  return createHash('md5').update(eventsMember(q)).digest().readUInt32BE(0) % shards;
}

export class EventShards {
  private readonly readers: EventReader[];
  private readonly replica = `${hostname()}:${process.pid}:${randomUUID()}`;
  private readonly leaseMs: number;
  /** Shards this replica may hold; until the first heartbeat it assumes it is alone. */
  private share: number;
  private heartbeat: IntervalLoop | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly o: EventShardsOptions) {
    this.leaseMs = o.leaseMs ?? EVENT_READER_DEFAULTS.leaseMs;
    this.share = o.shards;
    // One budget for the process: memory does not grow with the number of shards it holds.
    const inFlight = { max: o.lifecycle?.maxInFlight ?? LIFECYCLE_DEFAULTS.maxInFlight, used: 0, holders: new Set<QueueLifecycle>() };
    this.readers = Array.from({ length: o.shards }, (_, i) => {
      const { shards: _n, client: _c, ...readerOpts } = o;
      return new EventReader({
        ...readerOpts,
        inFlight,
        // One shard keeps the lease key of an unsharded reader, so upgrades keep one leader.
        shard: o.shards === 1 ? undefined : `${i}-of-${o.shards}`,
        mayAcquire: () => this.held() < this.share,
        onLeadership: () => o.changes?.setWhole(this.held() === o.shards),
        isMine: (q) => shardOf(q, o.shards) === i,
      });
    });
  }

  get isLeader(): boolean {
    return this.held() > 0;
  }

  private held(): number {
    return this.readers.filter((r) => r.isLeader).length;
  }

  setQueues(queues: readonly QueueRef[]): void {
    const parts: QueueRef[][] = this.readers.map(() => []);
    for (const q of queues) parts[shardOf(q, this.o.shards)]?.push(q);
    this.readers.forEach((r, i) => r.setQueues(parts[i] ?? []));
  }

  async start(): Promise<void> {
    if (this.heartbeat || this.closing) return;
    if (this.o.shards > 1) {
      // The first beat before any lease is tried, so a joining replica does not grab every free shard.
      await this.beat();
      this.heartbeat = startIntervalLoop(() => this.beat(), this.leaseMs / 3, { runImmediately: false });
    }
    for (const r of this.readers) r.start();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.heartbeat?.stop();
      await Promise.all(this.readers.map((r) => r.close()));
      if (this.o.shards > 1) await this.o.client.zrem(ownKeys.eventsReplicas(this.o.ownPrefix), this.replica).catch(() => undefined);
    })();
    return this.closing;
  }

  private async beat(): Promise<void> {
    const key = ownKeys.eventsReplicas(this.o.ownPrefix);
    try {
      const [sec, usec] = await this.o.client.time();
      const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
      await this.o.client.zadd(key, now, this.replica);
      await this.o.client.zremrangebyscore(key, '-inf', now - this.leaseMs);
      // Shares add up to exactly N: floor(N / alive) each, one more for the first N % alive replicas by id,
      // so every replica can reach its share and no shard is left over.
      const alive = (await this.o.client.zrange(key, '0', '-1')).sort();
      const rank = Math.max(0, alive.indexOf(this.replica));
      const n = Math.max(1, alive.length);
      this.share = Math.floor(this.o.shards / n) + (rank < this.o.shards % n ? 1 : 0);
    } catch (err) {
      // Leases time out by themselves while Redis is away; keep the last known share.
      this.o.log.debug({ err: (err as Error).message }, 'event shard heartbeat failed');
      return;
    }
    if (this.closing || this.held() <= this.share) return;
    // One at a time: the replicas under their share take it before the next one is given up.
    const extra = [...this.readers].reverse().find((r) => r.isLeader);
    this.o.log.info({ held: this.held(), share: this.share }, 'releasing an event reader shard to another replica');
    await extra?.release();
  }
}
