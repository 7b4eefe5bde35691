// Owns the set of queues the sidecar watches: SCAN for `<prefix>:*:meta` hashes on a slow timer, in small
// slices with the cursor carried between them, or a fixed list from the configuration. Never on the scrape path.
import type { Logger } from '../log/logger.js';
import { isCluster, masters, type RedisClient } from '../redis/connection.js';
import { metaScanPattern, parseMetaKey, queueId, queueKey, type QueueRef } from '../redis/keys.js';
import { keySlot } from '../redis/slots.js';

export interface DiscoveryOptions {
  redis: RedisClient;
  prefixes: readonly string[];
  /** Fixed queue names: no SCAN, these queues under every prefix. */
  fixedQueues?: readonly string[];
  maxQueues: number;
  log: Logger;
  /** Keys SCAN visits per call; small enough that one call stays well under 1 ms of Redis time. */
  scanCount?: number;
  /** SCAN calls before yielding to the event loop. */
  callsPerSlice?: number;
}

export class QueueDiscovery {
  private known = new Map<string, QueueRef>();
  private capped: QueueRef[] = [];
  private droppedCount = 0;
  /** `known` changed since `capped` was computed; sorting waits until someone asks (once per collection). */
  private stale = false;
  private passes = 0;
  private readonly crossSlotWarned = new Set<string>();

  constructor(private readonly opts: DiscoveryOptions) {
    if (opts.fixedQueues) {
      for (const prefix of opts.prefixes) for (const name of opts.fixedQueues) this.known.set(queueId({ prefix, name }), { prefix, name });
      this.stale = true;
    }
  }

  get isFixed(): boolean {
    return this.opts.fixedQueues !== undefined;
  }

  /** The watched queues, sorted by prefix then name, at most maxQueues of them. */
  queues(): readonly QueueRef[] {
    this.recap();
    return this.capped;
  }

  /** Queues found beyond --max-queues. */
  dropped(): number {
    this.recap();
    return this.droppedCount;
  }

  completedPasses(): number {
    return this.passes;
  }

  /** Called by the collector when a queue's meta hash is gone (obliterated): drop it now, not at the next pass. */
  forget(ref: QueueRef): void {
    if (this.isFixed) return;
    if (this.known.delete(queueId(ref))) {
      this.opts.log.info({ prefix: ref.prefix, queue: ref.name }, 'queue disappeared');
      this.stale = true;
    }
  }

  /** One full SCAN pass over every prefix. New queues appear as soon as they are found; vanished ones go at the end. */
  async runPass(): Promise<void> {
    if (this.isFixed) {
      this.passes += 1;
      return;
    }
    const seen = new Map<string, QueueRef>();
    for (const prefix of this.opts.prefixes) await this.scanPrefix(prefix, seen);
    for (const [id, ref] of this.known) {
      if (!seen.has(id)) {
        this.known.delete(id);
        this.opts.log.info({ prefix: ref.prefix, queue: ref.name }, 'queue disappeared');
        this.stale = true;
      }
    }
    this.passes += 1;
  }

  private async scanPrefix(prefix: string, seen: Map<string, QueueRef>): Promise<void> {
    // SCAN walks only the node it is sent to: in a Cluster, every master.
    for (const node of masters(this.opts.redis)) await this.scanNode(node, prefix, seen);
  }

  private async scanNode(redis: RedisClient, prefix: string, seen: Map<string, QueueRef>): Promise<void> {
    const count = this.opts.scanCount ?? 250;
    const perSlice = this.opts.callsPerSlice ?? 20;
    let cursor = '0';
    let calls = 0;
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', metaScanPattern(prefix), 'COUNT', count);
      cursor = next;
      const candidates = keys.map((k) => parseMetaKey(prefix, k)).filter((r): r is QueueRef => r !== null && this.slotSafe(r));
      if (candidates.length > 0) {
        for (const ref of await this.confirm(candidates)) {
          const id = queueId(ref);
          seen.set(id, ref);
          if (!this.known.has(id)) {
            this.known.set(id, ref);
            this.opts.log.info({ prefix: ref.prefix, queue: ref.name }, 'queue discovered');
            this.stale = true;
          }
        }
      }
      calls += 1;
      if (calls % perSlice === 0) await new Promise((r) => setImmediate(r));
    } while (cursor !== '0');
  }

  /**
   * In a Cluster every key of a queue must hash to one slot (a hash tag in the prefix or the name), or BullMQ's
   * scripts fail with CROSSSLOT. Such a queue cannot be read as a whole, so it is skipped with a warning.
   */
  private slotSafe(ref: QueueRef): boolean {
    if (!isCluster(this.opts.redis) || keySlot(queueKey(ref, 'wait')) === keySlot(queueKey(ref, 'meta'))) return true;
    const id = queueId(ref);
    if (!this.crossSlotWarned.has(id)) {
      this.crossSlotWarned.add(id);
      this.opts.log.warn(
        { prefix: ref.prefix, queue: ref.name },
        'queue keys span several cluster slots, so BullMQ cannot run it and it is skipped; use a hash-tag prefix such as {bull} or a queue name such as {email}',
      );
    }
    return false;
  }

  /** Keeps candidates whose key really is a BullMQ meta hash (BullMQ always writes one of these fields). */
  private async confirm(candidates: QueueRef[]): Promise<QueueRef[]> {
    // Auto-pipelined: one round trip per node, whatever the number of candidates.
    const replies = await Promise.all(
      // WRONGTYPE: the key is not a hash, so not a queue. Any other error (a timeout) aborts the pass: treating it
      // as "not a queue" would drop live queues at the end of the pass.
      candidates.map((ref) =>
        this.opts.redis.hmget(queueKey(ref, 'meta'), 'opts.maxLenEvents', 'version').catch((err: Error) => {
          if (/WRONGTYPE/.test(err.message)) return null;
          throw err;
        }),
      ),
    );
    return candidates.filter((_, i) => replies[i]?.some((f) => f !== null) ?? false);
  }

  private recap(): void {
    if (!this.stale) return;
    this.stale = false;
    const all = [...this.known.values()].sort((a, b) => (a.prefix === b.prefix ? cmp(a.name, b.name) : cmp(a.prefix, b.prefix)));
    this.capped = all.slice(0, this.opts.maxQueues);
    const dropped = all.length - this.capped.length;
    if (dropped > 0 && dropped !== this.droppedCount) {
      this.opts.log.warn({ dropped, maxQueues: this.opts.maxQueues }, 'more queues than --max-queues; the rest are not exported');
    }
    this.droppedCount = dropped;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
