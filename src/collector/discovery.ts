// Owns the set of queues the sidecar watches: SCAN for `<prefix>:*:meta` hashes on a slow timer, in small
// slices with the cursor carried between them, or a fixed list from the configuration. Never on the scrape path.
// A pass SCANs only when Redis's own counters say a queue may have appeared or vanished since the last full pass
// (see evidence()), and at least once per fullScanEveryMs regardless: at rest a pass costs two INFO calls per
// node instead of a walk over every key, retained jobs included. With traffic (XADDs and DELs all the time) a
// standalone Redis needs no SCAN either while redis/stream-proof.ts proves that every XADD went to a known queue's
// stream; removals then cost a look at the known queues' meta hashes instead.
import { isUtf8 } from 'node:buffer';
import type { Logger } from '../log/logger.js';
import { isCluster, masters, type RedisClient } from '../redis/connection.js';
import { metaScanPattern, parseMetaKey, queueKey } from '../redis/keys.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import { keySlot } from '../redis/slots.js';
import { MAX_NAME_BYTES, type SkipReason } from '../domain/queue-snapshot.js';
import { capQueues, warnCapped } from '../domain/queue-budget.js';
import { StreamProof } from '../redis/stream-proof.js';

/** Skipped queues logged by name at most this many times per process (a flood of hostile names is counted, not logged). */
const MAX_SKIP_LOGS = 100;

/** A full SCAN pass at least this often, whatever the evidence says (what evidence() cannot see, see there). */
export const FULL_SCAN_EVERY_MS = 10 * 60_000;

/**
 * Commands that create, delete or move keys wholesale, counted by Redis in INFO commandstats (also when a script
 * or MULTI runs them). Every way BullMQ creates a queue's keys writes an event (XADD: a job added by a producer,
 * with or without skipMetasUpdate, a flow, a scheduler, a pause), and obliterate() DELetes them. The sidecar sends
 * none of these at rest. HSET is not among them: the sidecar's own heartbeat sends it every second. XSETID can set
 * a stream's entries-added, which the stream proof counts on.
 */
const KEY_COMMANDS = ['rename', 'renamenx', 'restore', 'copy', 'move', 'migrate', 'swapdb', 'flushdb', 'flushall', 'xsetid'];
/** Sent by BullMQ all the time under traffic (events; a finished job's lock, removeOnComplete): see runPass(). */
const ADD_COMMANDS = ['xadd'];
const REMOVE_COMMANDS = ['del', 'unlink'];

/** What one node's INFO says about how its keyspace may have changed. */
interface NodeEvidence {
  /** run_id and the calls of KEY_COMMANDS: any difference means a queue may have appeared or vanished. */
  commands: string;
  /** The calls of ADD_COMMANDS: a queue may have appeared (unless the stream proof says where they went). */
  adds: string;
  /** The calls of REMOVE_COMMANDS: a queue may have vanished. */
  removes: string;
  /** INFO keyspace: the number of keys of each database. */
  keyspace: string;
  /** expired_keys + evicted_keys: keys that left without a command. */
  leftAlone: number;
}

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
  /** A full SCAN at least this often even when no evidence says the keyspace changed (FULL_SCAN_EVERY_MS); 0: every pass. */
  fullScanEveryMs?: number;
}

export class QueueDiscovery {
  private known = new Map<string, QueueRef>();
  private capped: QueueRef[] = [];
  private droppedCount = 0;
  /** Queues within --max-queues left out because the names before them used up NAME_BYTES_PER_QUEUE × max-queues. */
  private overBudget = 0;
  /** `known` changed since `capped` was computed; sorting waits until someone asks (once per collection). */
  private stale = false;
  private passes = 0;
  private changes = 0;
  private readonly crossSlotWarned = new Set<string>();
  /** Suggested names that are not queues (checked once; cleared when it grows past 1,000). */
  private rejected = new Set<string>();
  /** Queues skipped in the last full pass, and those of the pass under way. */
  private skippedCounts: Partial<Record<SkipReason, number>> = {};
  private skipping = new Map<string, SkipReason>();
  private readonly skipWarned = new Set<string>();
  /** Each node's evidence read just before the last full pass began, and when that was (local clock). */
  private lastFull: { at: number; nodes: NodeEvidence[] } | undefined;
  private scans = 0;
  /** Standalone Redis only: where the XADDs went (redis/stream-proof.ts); undefined in a Cluster or where it failed. */
  private proof: StreamProof | undefined;
  /**
   * Each node's ADD_COMMANDS and REMOVE_COMMANDS calls read before the last pass that accounted for them: a full
   * pass, or one the stream proof held for (which also looked at the metas when removals had moved).
   */
  private settled: Array<Pick<NodeEvidence, 'adds' | 'removes'>> = [];

  constructor(private readonly opts: DiscoveryOptions) {
    if (opts.fixedQueues) {
      for (const prefix of opts.prefixes) for (const name of opts.fixedQueues) this.known.set(queueId({ prefix, name }), { prefix, name });
      this.stale = true;
    }
    if (!opts.fixedQueues && !isCluster(opts.redis)) this.proof = new StreamProof(opts.redis);
  }

  get isFixed(): boolean {
    return this.opts.fixedQueues !== undefined;
  }

  get prefixes(): readonly string[] {
    return this.opts.prefixes;
  }

  /** Grows whenever the set of known queues changes (a new queue, a vanished one). */
  get generation(): number {
    return this.changes;
  }

  /**
   * Queues seen outside a pass (a worker connection named for a queue not known yet, in CLIENT LIST): confirmed
   * like a pass's candidates and added at once, so a new queue with workers is found at the next collection
   * instead of the next SCAN pass. Returns how many were added.
   */
  async suggest(refs: readonly QueueRef[]): Promise<number> {
    if (this.isFixed) return 0;
    const fresh = refs.filter((r) => {
      const id = queueId(r);
      return !this.known.has(id) && !this.rejected.has(id) && this.opts.prefixes.includes(r.prefix) && this.slotSafe(r);
    });
    if (fresh.length === 0) return 0;
    const confirmed = await this.confirm(fresh);
    const ok = new Set(confirmed.map(queueId));
    if (this.rejected.size > 1000) this.rejected = new Set();
    for (const ref of fresh) if (!ok.has(queueId(ref))) this.rejected.add(queueId(ref));
    for (const ref of confirmed) this.add(ref);
    return confirmed.length;
  }

  private add(ref: QueueRef): void {
    this.known.set(queueId(ref), ref);
    this.opts.log.info({ prefix: ref.prefix, queue: ref.name }, 'queue discovered');
    this.stale = true;
    this.changes += 1;
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

  /** Queues of the last full pass not watched because of their name. */
  skipped(): Partial<Record<SkipReason, number>> {
    this.recap();
    return this.overBudget > 0 ? { ...this.skippedCounts, exposition_size: this.overBudget } : this.skippedCounts;
  }

  completedPasses(): number {
    return this.passes;
  }

  /** Passes that walked the keyspace with SCAN (the others found no evidence of a change). */
  scanPasses(): number {
    return this.scans;
  }

  /** Called by the collector when a queue's meta hash is gone (obliterated): drop it now, not at the next pass. */
  forget(ref: QueueRef): void {
    if (this.isFixed) return;
    if (this.known.delete(queueId(ref))) {
      this.opts.log.info({ prefix: ref.prefix, queue: ref.name }, 'queue disappeared');
      this.stale = true;
      this.changes += 1;
    }
  }

  /**
   * One pass: a full SCAN over every prefix, unless no evidence says a queue may have appeared or vanished since
   * the last one (and that one is younger than fullScanEveryMs). New queues appear as soon as they are found;
   * vanished ones go at the end.
   */
  async runPass(): Promise<void> {
    if (this.isFixed) {
      this.passes += 1;
      return;
    }
    const startedAt = Date.now();
    // Read before the SCAN, so that a change landing during it is seen by the next pass. Unreadable (INFO denied,
    // renamed): every pass SCANs, as before.
    const evidence = await this.evidence().catch(() => undefined);
    if (evidence && this.unchangedSinceLastFull(evidence, startedAt)) {
      this.passes += 1;
      return;
    }
    if (evidence && (await this.provenSinceLastFull(evidence, startedAt))) {
      this.passes += 1;
      return;
    }
    await this.restartProof();
    await this.fullPass();
    await this.proof?.noted([...this.known.values()]).catch(() => undefined);
    this.lastFull = evidence && { at: startedAt, nodes: evidence };
    this.settled = evidence ?? [];
    this.scans += 1;
  }

  private unchangedSinceLastFull(now: NodeEvidence[], at: number): boolean {
    return this.quietSinceLastFull(now, at, (n, i) => n.adds === this.settled[i]?.adds && n.removes === this.settled[i]?.removes);
  }

  /** The key commands, key count and age of the last full pass allow skipping a SCAN, and `more` agrees. */
  private quietSinceLastFull(now: NodeEvidence[], at: number, more: (n: NodeEvidence, node: number) => boolean): boolean {
    const last = this.lastFull;
    if (!last || at - last.at >= (this.opts.fullScanEveryMs ?? FULL_SCAN_EVERY_MS) || last.nodes.length !== now.length) return false;
    return now.every((n, i) => {
      const before = last.nodes[i] as NodeEvidence;
      // A key count that moved while no key expired or was evicted: something created or deleted keys (a
      // Queue object writing its meta hash before any job). When keys expire meanwhile (an idle worker's
      // stalled-check key every 30 s) the count cannot tell the two apart, and only the commands and the
      // periodic full SCAN speak for it.
      return n.commands === before.commands && (n.keyspace === before.keyspace || n.leftAlone !== before.leftAlone) && more(n, i);
    });
  }

  /**
   * Traffic without a SCAN (standalone): XADDs that the stream proof accounts for all went to known queues, so
   * none appeared; removals since the last look at the known queues' metas are found by looking again (HMGET of
   * each meta in a script, ~1 µs a queue, against a SCAN's walk over every job's keys).
   */
  private async provenSinceLastFull(now: NodeEvidence[], at: number): Promise<boolean> {
    const proof = this.proof;
    if (!proof || now.length !== 1 || !this.quietSinceLastFull(now, at, () => true)) return false;
    if (!(await proof.proves(new Set(this.known.keys())).catch(() => false))) return false;
    if (now[0]!.removes !== this.settled[0]?.removes) {
      for (const ref of await proof.gone([...this.known.values()])) this.forget(ref);
    }
    this.settled = now;
    return true;
  }

  /** Before a SCAN: the stream proof's next starting point (a failure leaves it without one: SCANs until the next). */
  private async restartProof(): Promise<void> {
    await this.proof?.restart([...this.known.values()]).catch((err: Error) => {
      // Redis < 7 has no EVALSHA_RO: no proof on this server, SCAN as before.
      if (/unknown command/i.test(err.message)) this.proof = undefined;
    });
  }

  /** Each node's INFO (server, stats, keyspace) and INFO commandstats, reduced to what evidence compares. */
  private async evidence(): Promise<NodeEvidence[]> {
    return Promise.all(
      masters(this.opts.redis).map(async (node) => {
        const [info, stats] = await Promise.all([node.info(), node.info('commandstats')]);
        const field = (k: string) => new RegExp(`^${k}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '';
        const calls = (commands: string[]) => commands.map((c) => new RegExp(`^cmdstat_${c}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? '0');
        return {
          commands: [field('run_id'), ...calls(KEY_COMMANDS)].join(' '),
          adds: calls(ADD_COMMANDS).join(' '),
          removes: calls(REMOVE_COMMANDS).join(' '),
          keyspace: [...info.matchAll(/^db\d+:keys=\d+/gm)].map((m) => m[0]).join(' '),
          leftAlone: Number(field('expired_keys') || 0) + Number(field('evicted_keys') || 0),
        };
      }),
    );
  }

  private async fullPass(): Promise<void> {
    const seen = new Map<string, QueueRef>();
    this.skipping = new Map();
    for (const prefix of this.opts.prefixes) await this.scanPrefix(prefix, seen);
    const counts: Partial<Record<SkipReason, number>> = {};
    for (const reason of this.skipping.values()) counts[reason] = (counts[reason] ?? 0) + 1;
    this.skippedCounts = counts;
    for (const [id, ref] of this.known) {
      if (!seen.has(id)) {
        this.known.delete(id);
        this.opts.log.info({ prefix: ref.prefix, queue: ref.name }, 'queue disappeared');
        this.stale = true;
        this.changes += 1;
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
      // Keys as bytes: a key that is not UTF-8 would otherwise turn into another (U+FFFD) string and vanish unseen.
      const [next, raw] = await redis.scanBuffer(cursor, 'MATCH', metaScanPattern(prefix), 'COUNT', count);
      cursor = next.toString();
      const keys: string[] = [];
      const notUtf8: Buffer[] = [];
      for (const k of raw) {
        if (isUtf8(k)) keys.push(k.toString());
        else notUtf8.push(k);
      }
      if (notUtf8.length > 0) await this.skipNotUtf8(prefix, notUtf8);
      const candidates = keys.map((k) => parseMetaKey(prefix, k)).filter((r): r is QueueRef => r !== null && this.slotSafe(r) && this.nameFits(r));
      // A queue already known was confirmed when found; each collection reading it checks its meta again (and
      // forgets it once BullMQ's fields are gone), so a pass confirms only the new ones: at rest no HMGET per queue.
      const fresh: QueueRef[] = [];
      for (const ref of candidates) {
        const id = queueId(ref);
        if (this.known.has(id)) seen.set(id, ref);
        else fresh.push(ref);
      }
      if (fresh.length > 0) {
        for (const ref of await this.confirm(fresh)) {
          const id = queueId(ref);
          seen.set(id, ref);
          if (!this.known.has(id)) this.add(ref);
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

  /** A name longer than MAX_NAME_BYTES is skipped: it would be repeated in every series of the queue. */
  private nameFits(ref: QueueRef): boolean {
    const bytes = Buffer.byteLength(ref.name);
    if (bytes <= MAX_NAME_BYTES) return true;
    this.skip(queueId(ref), 'name_too_long', { prefix: ref.prefix, queue: `${ref.name.slice(0, 64)}…`, bytes });
    return false;
  }

  /**
   * Queues whose name is not UTF-8 cannot be read with string key names nor exported as label values: they are
   * counted (when their meta hash really is a queue's) and logged with the name's bytes in hex.
   */
  private async skipNotUtf8(prefix: string, keys: Buffer[]): Promise<void> {
    // As confirm(): WRONGTYPE means not a queue; any other error aborts the pass.
    const replies = await Promise.all(
      keys.map((k) =>
        this.opts.redis.hmget(k, 'opts.maxLenEvents', 'version').catch((err: Error) => {
          if (/WRONGTYPE/.test(err.message)) return null;
          throw err;
        }),
      ),
    );
    for (const [i, k] of keys.entries()) {
      if (!replies[i]?.some((f) => f !== null)) continue;
      const hex = k.toString('hex');
      this.skip(`${prefix}\u0000${hex}`, 'not_utf8', { prefix, keyHex: hex.slice(0, 256), bytes: k.length });
    }
  }

  private skip(id: string, reason: SkipReason, what: Record<string, unknown>): void {
    this.skipping.set(id, reason);
    if (this.skipWarned.has(id) || this.skipWarned.size >= MAX_SKIP_LOGS) return;
    this.skipWarned.add(id);
    const why = reason === 'not_utf8' ? 'its name is not UTF-8' : `its name is longer than ${MAX_NAME_BYTES} bytes`;
    this.opts.log.warn({ ...what, reason }, `queue not monitored: ${why}; counted in bullmq_exporter_queues_dropped{reason="${reason}"}`);
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
    const capped = capQueues(this.known.values(), this.opts.maxQueues);
    warnCapped(
      (fields, message) => this.opts.log.warn(fields, message),
      { overBudget: this.overBudget, dropped: this.droppedCount },
      capped,
      this.opts.maxQueues,
    );
    this.capped = capped.watched;
    this.overBudget = capped.overBudget;
    this.droppedCount = capped.dropped;
  }
}
