// Owns the events-stream reader: while this replica holds the lease it follows every queue's
// `<prefix>:<queue>:events` (XREAD over many streams per call, bounded COUNT, BLOCK on its own connection),
// feeds the lifecycle machines, and persists accounting + cursors in one fenced script call per batch.
// It never reads a job hash. Replicas that are not leader do nothing here; they render via read-back.ts.
import type { Redis } from 'ioredis';
import type { Logger } from '../log/logger.js';
import { createRedis } from '../redis/connection.js';
import { eventsMember, ownKeys, queueId, queueKey, parseEventsMember, type QueueRef } from '../redis/keys.js';
import { defineScript } from '../redis/scripts.js';
import { QueueAccounting } from './accounting.js';
import { LeaderLease } from './leader-lease.js';
import { LIFECYCLE_DEFAULTS, QueueLifecycle, toEntry, type LifecycleOptions, type StreamEntry } from './lifecycle.js';
import { ReadBudget } from './read-budget.js';

export interface EventReaderOptions {
  redisUrl: string;
  /** queuelens's own key prefix (never a BullMQ prefix). */
  ownPrefix: string;
  log: Logger;
  /** Lease duration; a dead leader is replaced within about 1.2 × this. */
  leaseMs?: number;
  /** Keep the state of a queue that disappeared this long (then delete it). */
  retentionMs?: number;
  lifecycle?: Partial<LifecycleOptions>;
  /** Most entries per stream per XREAD (fewer when entries are large, see readBytes). */
  count?: number;
  /** Bytes one XREAD (or history slice) should stay under: `completed` entries carry whole return values. */
  readBytes?: number;
  /** Streams per XREAD call (bounds each call and each commit script). */
  streamsPerRead?: number;
  blockMs?: number;
  /** History replayed (not counted) per queue when taking over, to know the jobs already in flight. */
  rebuildEntries?: number;
  /** How often the leader marks present queues and forgets vanished ones. */
  maintenanceMs?: number;
}

export const EVENT_READER_DEFAULTS = {
  leaseMs: 10_000,
  retentionMs: 7 * 86_400_000,
  count: 1000,
  readBytes: 8 * 1024 * 1024,
  streamsPerRead: 100,
  blockMs: 1000,
  rebuildEntries: 1000,
  maintenanceMs: 60_000,
};

/** Longest close() waits for the loop, the lease release and QUIT (the sidecar's whole shutdown has 5 s). */
const CLOSE_MS = 1500;

type ReaderClient = Redis & {
  eventsInit(numKeys: number, ...args: string[]): Promise<string[] | null>;
  eventsCommit(numKeys: number, ...args: (string | number)[]): Promise<number[] | null>;
  eventsTouch(lease: string, index: string, token: string, ...members: string[]): Promise<number>;
  eventsForget(numKeys: number, ...args: (string | number)[]): Promise<number | null>;
};

interface QueueState {
  queue: QueueRef;
  stream: string;
  hash: string;
  acc: QueueAccounting;
  machine: QueueLifecycle;
  /** Last id fed to the machine (XREAD resumes here); the committed cursor may trail it by one held entry. */
  readId: string;
}

type RawEntry = [id: Buffer, fields: Buffer[]];
type XReadReply = Array<[Buffer, RawEntry[]]> | null;

const KEPT_FIELDS = new Set(['event', 'jobId', 'prev', 'delay', 'name']);

/**
 * Entries arrive as Buffers and only the fields the lifecycle uses become strings: a 5 MB return value is
 * never copied into a JS string, and its Buffer is dropped with the reply.
 */
function decode([id, flat]: RawEntry): StreamEntry {
  const kept: string[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const k = (flat[i] as Buffer).toString();
    if (KEPT_FIELDS.has(k)) kept.push(k, (flat[i + 1] as Buffer).toString());
  }
  return toEntry(id.toString(), kept);
}

/** A fenced script found the lease gone. */
class FencedOut extends Error {}
/** Leadership changed while a pass was waiting on Redis: its in-memory state belongs to an old term. */
class TermChanged extends Error {}

export class EventReader {
  private readonly opts: typeof EVENT_READER_DEFAULTS;
  private readonly lifecycle: LifecycleOptions;
  private readonly cmd: ReaderClient;
  private readonly blocking: Redis;
  private readonly lease: LeaderLease;
  private readonly budget: ReadBudget;
  private readonly keys: { lease: string; meta: string; index: string };
  private wanted = new Map<string, QueueRef>();
  private states = new Map<string, QueueState>();
  private byStream = new Map<string, QueueState>();
  private synced = false;
  private nextMaintenance = 0;
  private rotation = 0;
  /** Consecutive XREADs that returned nothing; a whole idle round over the groups lets the next one block. */
  private idleReads = 0;
  private loop: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly o: EventReaderOptions) {
    const d = EVENT_READER_DEFAULTS;
    this.opts = {
      leaseMs: o.leaseMs ?? d.leaseMs,
      retentionMs: o.retentionMs ?? d.retentionMs,
      count: o.count ?? d.count,
      readBytes: o.readBytes ?? d.readBytes,
      streamsPerRead: o.streamsPerRead ?? d.streamsPerRead,
      blockMs: o.blockMs ?? d.blockMs,
      rebuildEntries: o.rebuildEntries ?? d.rebuildEntries,
      maintenanceMs: o.maintenanceMs ?? d.maintenanceMs,
    };
    this.lifecycle = { ...LIFECYCLE_DEFAULTS, ...o.lifecycle };
    this.budget = new ReadBudget({ maxBytes: this.opts.readBytes, maxCount: this.opts.count });
    this.keys = { lease: ownKeys.leader(o.ownPrefix), meta: ownKeys.eventsMeta(o.ownPrefix), index: ownKeys.eventsIndex(o.ownPrefix) };
    // Standalone Redis only: the commit script spans many queues' keys, which Cluster would refuse (CROSSSLOT).
    // A hung Redis must not hold a renewal past the lease, nor a pass or shutdown forever: lease/3 per command.
    this.cmd = createRedis({ url: o.redisUrl, name: 'queuelens:events', log: o.log, commandTimeoutMs: Math.ceil(this.opts.leaseMs / 3) }) as ReaderClient;
    // XREAD BLOCK holds its connection; it gets one of its own that waits through Redis outages.
    this.blocking = createRedis({ url: o.redisUrl, name: 'queuelens:events:read', log: o.log, maxRetriesPerRequest: null }) as Redis;
    defineScript(this.cmd, 'eventsInit', 'events-init-n.lua');
    defineScript(this.cmd, 'eventsCommit', 'events-commit-n.lua');
    defineScript(this.cmd, 'eventsTouch', 'events-touch-2.lua');
    defineScript(this.cmd, 'eventsForget', 'events-forget-n.lua');
    this.lease = new LeaderLease({
      client: this.cmd,
      key: this.keys.lease,
      leaseMs: this.opts.leaseMs,
      log: o.log,
      onChange: (leader) => {
        // Whatever was in memory is stale for a new term: state is reloaded from Redis on the next pass.
        this.states.clear();
        this.byStream.clear();
        this.synced = false;
        this.nextMaintenance = 0;
        this.budget.reset();
        if (leader) this.wake?.();
      },
    });
  }

  get isLeader(): boolean {
    return this.lease.isLeader;
  }

  /** The queues to follow (from discovery). Takes effect on the next pass. */
  setQueues(queues: readonly QueueRef[]): void {
    this.wanted = new Map(queues.map((q) => [queueId(q), q]));
    this.synced = false;
  }

  start(): void {
    if (this.loop || this.closing) return;
    this.lease.start();
    this.loop = this.run();
  }

  /** Stops within CLOSE_MS even when Redis hangs: then the lease is left to expire by itself. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.wake?.();
      this.blocking.disconnect(); // interrupts a pending XREAD BLOCK
      const graceful = (async () => {
        await this.loop;
        await this.lease.close();
        await this.cmd.quit();
      })().catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([graceful, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_MS).unref()))]);
      clearTimeout(timer);
      this.cmd.disconnect(); // rejects whatever is still waiting on Redis; `graceful` swallows it
    })();
    return this.closing;
  }

  private async run(): Promise<void> {
    while (!this.closing) {
      try {
        if (!this.lease.isLeader) {
          await this.sleep(this.opts.leaseMs / 5);
          continue;
        }
        // Every write of this pass carries the token of the term it started in.
        const token = this.lease.token;
        if (!this.synced) await this.sync(token);
        if (Date.now() >= this.nextMaintenance) await this.maintain(token);
        await this.readBatch(token);
      } catch (err) {
        if (this.closing) break;
        if (err instanceof FencedOut) this.lease.lost('a fenced write found the lease gone');
        else if (!(err instanceof TermChanged)) {
          // readBatch dropped the state of the group it failed on; sync() reloads just those queues.
          this.o.log.warn({ err: (err as Error).message }, 'event reader pass failed; reloading the state of the queues it was reading');
          this.synced = false;
          await this.sleep(500);
        }
      }
    }
  }

  /** Loads the state of newly wanted queues (or all, after a leadership change) and drops unwanted ones. */
  private async sync(token: string): Promise<void> {
    for (const [id, s] of this.states) {
      if (!this.wanted.has(id)) {
        this.states.delete(id);
        this.byStream.delete(s.stream);
      }
    }
    const missing = [...this.wanted].filter(([id]) => !this.states.has(id)).map(([, q]) => q);
    // With no queue yet, the call still records when the reader was installed: a queue created after that
    // is then read from its first entry when discovery finds it, not from wherever its stream is by then.
    if (missing.length === 0 && this.states.size === 0) await this.load(token, []);
    for (let i = 0; i < missing.length; i += this.opts.streamsPerRead) {
      await this.load(token, missing.slice(i, i + this.opts.streamsPerRead));
    }
    this.synced = true;
  }

  private async load(token: string, queues: QueueRef[]): Promise<void> {
    const own = this.o.ownPrefix;
    const hashes = queues.map((q) => ownKeys.eventsQueue(own, q));
    const streams = queues.map((q) => queueKey(q, 'events'));
    const keys = [this.keys.lease, this.keys.meta, this.keys.index, ...hashes.flatMap((h, i) => [h, streams[i] as string])];
    const cursors = await this.cmd.eventsInit(keys.length, ...keys, token, ...queues.map(eventsMember));
    if (!cursors) throw new FencedOut();
    this.checkTerm(token);

    const pipe = this.cmd.pipeline();
    for (const h of hashes) pipe.hgetall(h);
    const replies = (await pipe.exec()) ?? [];
    const histories = await this.history(streams, cursors);
    this.checkTerm(token);
    for (let i = 0; i < queues.length; i++) {
      const [hErr, hash] = replies[i] ?? [];
      if (hErr) throw hErr;
      const acc = QueueAccounting.fromHash(hash as Record<string, string>);
      const machine = new QueueLifecycle(acc, this.lifecycle, acc.jobNames());
      // Replay what is still retained before the cursor, uncounted, so jobs already in flight are known.
      machine.replay(histories[i] ?? []);
      const cursor = cursors[i] as string;
      const q = queues[i] as QueueRef;
      const state: QueueState = { queue: q, stream: streams[i] as string, hash: hashes[i] as string, acc, machine, readId: cursor };
      this.states.set(queueId(q), state);
      this.byStream.set(state.stream, state);
    }
  }

  /**
   * Up to rebuildEntries entries of each stream up to and including its cursor, oldest first. Read
   * backwards in slices of 200, so that no single XREVRANGE holds Redis for long.
   */
  private async history(streams: string[], cursors: string[]): Promise<StreamEntry[][]> {
    const out: StreamEntry[][] = streams.map(() => []);
    let ends: Array<string | undefined> = cursors.map((c) => (c === '0-0' ? undefined : c));
    while (ends.some((e) => e !== undefined)) {
      const pipe = this.cmd.pipeline();
      const asked: Array<[index: number, count: number]> = [];
      const slice = Math.min(200, this.budget.count(ends.filter((e) => e !== undefined).length));
      ends.forEach((end, i) => {
        if (end === undefined) return;
        const n = Math.min(slice, this.opts.rebuildEntries - (out[i] as StreamEntry[]).length);
        pipe.xrevrangeBuffer(streams[i] as string, end, '-', 'COUNT', n);
        asked.push([i, n]);
      });
      const replies = (await pipe.exec()) ?? [];
      const next: Array<string | undefined> = ends.map(() => undefined);
      asked.forEach(([i, n], k) => {
        const [err, reply] = replies[k] ?? [];
        const entries = err ? [] : (reply as RawEntry[]);
        this.budget.observe(entries);
        const acc = out[i] as StreamEntry[];
        for (const e of entries) acc.push(decode(e));
        const last = acc.at(-1)?.id;
        if (entries.length === n && acc.length < this.opts.rebuildEntries && last) next[i] = `(${last}`;
      });
      this.budget.grow();
      ends = next;
    }
    return out.map((h) => h.reverse());
  }

  /** One XREAD over one group of streams, then one commit script call for what it read. */
  private async readBatch(token: string): Promise<void> {
    const all = [...this.states.values()];
    if (all.length === 0) {
      await this.sleep(this.opts.blockMs);
      return;
    }
    const groups = Math.ceil(all.length / this.opts.streamsPerRead);
    const g = this.rotation++ % groups;
    const group = all.slice(g * this.opts.streamsPerRead, (g + 1) * this.opts.streamsPerRead);
    // One group blocks the full time. Several are read in turn without blocking, so a busy group is never
    // starved by idle ones; only after a whole round found nothing does one read block, briefly.
    const block = groups === 1 ? this.opts.blockMs : this.idleReads >= groups ? Math.min(this.opts.blockMs, 20) : undefined;
    try {
      await this.readGroup(token, group, block);
    } catch (err) {
      if (!(err instanceof FencedOut || err instanceof TermChanged)) {
        // A commit may or may not have applied: reload this group's state from Redis rather than guess.
        // The other groups' state is unaffected, and reloading them would replay their history for nothing.
        for (const s of group) {
          this.states.delete(queueId(s.queue));
          this.byStream.delete(s.stream);
        }
      }
      throw err;
    }
  }

  private async readGroup(token: string, group: QueueState[], block: number | undefined): Promise<void> {
    const streams = [...group.map((s) => s.stream), ...group.map((s) => s.readId)];
    const count = this.budget.count(group.length);
    const reply = (
      block === undefined
        ? await this.blocking.xreadBuffer('COUNT', count, 'STREAMS', ...streams)
        : await this.blocking.xreadBuffer('COUNT', count, 'BLOCK', block, 'STREAMS', ...streams)
    ) as XReadReply;
    this.checkTerm(token);
    this.budget.grow();
    this.idleReads = reply ? 0 : this.idleReads + 1;

    const got = new Set<QueueState>();
    for (const [stream, raw] of reply ?? []) {
      const s = this.byStream.get(stream.toString());
      if (!s || raw.length === 0) continue;
      this.budget.observe(raw);
      const entries: StreamEntry[] = raw.map(decode);
      s.machine.apply(entries, entries.length < count);
      s.readId = (entries.at(-1) as StreamEntry).id;
      got.add(s);
    }
    // A stream that returned nothing is at its end: a held `waiting prev=active` there is a retry.
    for (const s of group) if (!got.has(s)) s.machine.flush();
    await this.commit(token, group);
  }

  private async commit(token: string, group: QueueState[]): Promise<void> {
    const keys: string[] = [this.keys.lease];
    const args: (string | number)[] = [token];
    const committed: QueueState[] = [];
    for (const s of group) {
      const { id, count } = s.machine.takeApplied();
      if (id === undefined || count === 0) continue;
      s.acc.reader('read', count);
      const fields = s.acc.dirtyFields();
      keys.push(s.hash, s.stream);
      args.push(id, count, fields.length, ...fields);
      committed.push(s);
    }
    if (committed.length === 0) return;
    const lost = await this.cmd.eventsCommit(keys.length, ...keys, ...args);
    if (!lost) throw new FencedOut();
    this.checkTerm(token);
    committed.forEach((s, i) => {
      s.acc.clearDirty();
      const n = lost[i] ?? 0;
      if (n > 0) {
        // Entries of this queue were trimmed before they were read: tracked jobs may have moved on unseen.
        s.machine.resetJobs();
        this.o.log.warn({ queue: s.queue.name, prefix: s.queue.prefix, lost: n }, 'events were trimmed before the reader saw them');
      }
    });
  }

  /** Marks the followed queues as present and deletes the state of queues gone longer than the retention. */
  private async maintain(token: string): Promise<void> {
    this.nextMaintenance = Date.now() + this.opts.maintenanceMs;
    const members = [...this.wanted.values()].map(eventsMember);
    for (let i = 0; i < members.length; i += 500) {
      const ok = await this.cmd.eventsTouch(this.keys.lease, this.keys.index, token, ...members.slice(i, i + 500));
      if (ok !== 1) throw new FencedOut();
    }
    const [sec, usec] = await this.cmd.time();
    const cutoff = Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - this.opts.retentionMs;
    for (;;) {
      const stale = await this.cmd.zrangebyscore(this.keys.index, '-inf', cutoff, 'LIMIT', 0, 100);
      const queues = stale.map((m) => [m, parseEventsMember(m)] as const).filter((x): x is [string, QueueRef] => x[1] !== null);
      if (queues.length === 0) break;
      const keys = [this.keys.lease, this.keys.index, ...queues.map(([, q]) => ownKeys.eventsQueue(this.o.ownPrefix, q))];
      const n = await this.cmd.eventsForget(keys.length, ...keys, token, this.opts.retentionMs, ...queues.map(([m]) => m));
      if (n === null) throw new FencedOut();
      this.o.log.info({ forgotten: n }, 'deleted event state of queues gone longer than the retention');
      if (n === 0 || stale.length < 100) break;
    }
  }

  private checkTerm(token: string): void {
    if (this.closing || this.lease.token !== token) throw new TermChanged();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      t.unref();
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }
}
