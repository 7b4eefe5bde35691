// Owns the events-stream reader: while this replica holds the lease (of one shard of the queues) it follows
// every queue's `<prefix>:<queue>:events` (XREAD over many streams per call, bounded COUNT, BLOCK on its own
// connection), feeds the lifecycle machines, and persists accounting + cursors in one fenced script call per
// batch. It never reads a job hash. Replicas that are not leader do nothing here; they render via read-back.ts.
// On Redis Cluster a multi-key command or script may only span one slot: streams are grouped by slot (one
// XREAD and one commit per group; with per-queue hash tags that is one queue per group), and every group is
// polled without blocking, all nodes at once, with a short sleep when a whole round found nothing.
import type { Logger } from '../log/logger.js';
import { RepeatLimiter } from '../log/repeat-limiter.js';
import { createRedis, isCluster, type RedisClient } from '../redis/connection.js';
import { eventsMember, ownKeys, queueKey, parseEventsMember } from '../redis/keys.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import { RawConnection, ReplyTooLargeError } from '../redis/raw-connection.js';
import { eventsCommit, eventsForget, eventsGone, eventsInit, eventsRestart, type EventsCommitQueue } from '../redis/lua-scripts.js';
import { bindScript, type CallOf } from '../redis/scripts.js';
import { groupBySlot, keySlot } from '../redis/slots.js';
import { QueueAccounting } from './accounting.js';
import { LeaderLease } from './leader-lease.js';
import { LIFECYCLE_DEFAULTS, QueueLifecycle, type InFlightBudget, type LifecycleOptions, type StreamEntry } from './lifecycle.js';
import { ReadBudget } from './read-budget.js';
import { decodeEntries, parseXreadReply, type RawEntry, type StreamBatch } from './stream-reply.js';
import { heartbeatField } from './accounting.js';
import type { QueueChanges } from '../domain/queue-changes.js';
import { IdleGate } from './idle-gate.js';
import { BurstGuard, XaddCounter, type CounterClient } from './burst-guard.js';

export interface EventReaderOptions {
  redisUrl: string;
  /** Redis Cluster seed nodes; unset = standalone. */
  clusterNodes?: readonly string[];
  /** Lease of the shard this reader follows (ownKeys.leader's shard part); 'all' when not sharded. */
  shard?: string;
  /** Asked before each lease acquisition (sharding: only a fair share of shards per replica). */
  mayAcquire?: () => boolean;
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
  /**
   * Standalone: the shortest time between the starts of two rounds over the groups (with one group, two reads).
   * With traffic every round finds entries, so without it the reader reads and commits as fast as round trips
   * allow, and its Redis time grows with the machine's speed rather than with the traffic. A change waits at most
   * this long for its read; collections started by changes are at least collector/change-plan.ts's PROMPT_GAP_MS
   * (500 ms) apart anyway. Default: blockMs / 2.
   */
  minRoundMs?: number;
  /**
   * Standalone, several groups of streams: the longest pause between two polling rounds that found nothing. The
   * pause starts at blockMs and doubles with each idle round up to this, so idle streams cost Redis a fifth as
   * much; the first event after a quiet spell waits at most this long, the ones after it at most blockMs.
   * Default: 5 × blockMs.
   */
  idlePollMs?: number;
  /** History replayed (not counted) per queue when taking over, to know the jobs already in flight. */
  rebuildEntries?: number;
  /** How often the leader marks present queues and forgets vanished ones. */
  maintenanceMs?: number;
  /** Cluster: sleep after a poll round over every group found nothing. */
  pollMs?: number;
  /** The BullMQ prefixes discovery watches: each is marked watched at the reader's first sync, queues or not. */
  prefixes?: readonly string[];
  /** Whether a queue belongs to this reader's shard (retention clean-up touches only those). */
  isMine?: (q: QueueRef) => boolean;
  /**
   * How often the shard's heartbeat is written (one HSET per shard, whatever the number of queues). Every
   * replica ages a caught-up queue's lag from it: beyond twice this plus a blocking read (3 s by default) a
   * caught-up queue shows lag, so a dead or stalled leader is seen within seconds.
   */
  lagRefreshMs?: number;
  /** The in-flight budget to share (all shard readers of a process); default: one of this reader's own. */
  inFlight?: InFlightBudget;
  /**
   * Told which queues this reader follows and which of them moved (entries read, accounting committed), so the
   * collection re-reads only those (collector/change-plan.ts). Shared by every shard reader of a process.
   */
  changes?: QueueChanges;
  /** Called after every change of this reader's leadership (EventShards tells whether it holds them all). */
  onLeadership?: () => void;
  /**
   * While its events keep coming, a queue's accounting and cursor are committed at most once per this period (ms),
   * asked at each commit: the sidecar passes collector/demand-pace.ts's busy period, so counters are committed about
   * as often as anyone looks at them. Default COMMIT_PACE_MS. The rules that commit at once (see mayDefer) hold
   * whatever it says.
   */
  commitPaceMs?: () => number;
  /**
   * About how long until a busy queue brought up to date now is due again (demand-pace.ts spacingMs: longer than
   * commitPaceMs just after a refresh timed before a predicted look). Projects what a paced stream takes in until its
   * next read (readPaced) and spaces the full rounds. Default: commitPaceMs.
   */
  paceSpacingMs?: () => number;
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
  pollMs: 50,
  lagRefreshMs: 1000,
};

/** RESP headers, ids and stream names around the entries' bytes that the budget counts (generous). */
const REPLY_FRAMING = 64 * 1024;

/** Tracked jobs checked against Redis per queue per maintenance pass (EXISTS each, 500 per script call). */
const RECONCILE_IDS = 5000;

/** Orders stream ids `<ms>-<seq>` (also '0-0'). */
function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}

/**
 * Queues per commit script call. Each queue costs the script a few hash writes and one XINFO (about 17 µs of
 * Redis time at 10,000 queues); 25 keep every call well under the 1 ms a command of ours may hold Redis.
 */
const COMMIT_QUEUES = 25;

/**
 * Queues per claim (events-init-n.lua) call at start-up. Measured on an idle private Redis (SLOWLOG, streams of 1,000
 * entries): about 12 µs per call plus 13 µs per queue claimed the first time (its XINFO STREAM), 3.5 µs per queue
 * claimed again; 25 took 320 µs at the median, and under load on a shared machine over 1 ms. 10: about 130 µs.
 */
const INIT_QUEUES = 10;

/**
 * While its events keep coming, a queue's accounting and cursor are committed (together, atomically) at most this
 * often by default (EventReaderOptions.commitPaceMs): the commit script's per-queue cost (about 18 µs) then follows
 * the busy queues, not the rounds. Entries read but not committed yet are read again by a next leader from the
 * committed cursor, counted once. A stream that retains little next to what was read (the length each commit
 * returns), shutdown and a lease handover commit at once.
 */
const COMMIT_PACE_MS = 1000;

/** A stream retaining fewer entries (a small maxLenEvents) is committed at every read, as before pacing. */
const DEFER_MIN_RETAINED = 200;

/**
 * Standalone, several groups: a round XREADs only the streams that returned entries within QUIET_AFTER_MS (or two
 * paces' spacing, at most the lag's grace, if longer); every stream is read in a full round at least FULL_ROUND_MS
 * apart, or half that spacing if longer, and at once when busy queues fall due (so before each predicted look), and
 * before an idle pause (see readBatch). XREAD costs Redis per stream named, so with traffic its cost follows the busy
 * streams, not all of them; the first event after a quiet spell, on a stream among busy ones, is read within about
 * FULL_ROUND_MS + minRoundMs (1.5 s) while the data is asked for every second or two, within about half the pace
 * otherwise.
 */
const QUIET_AFTER_MS = 5000;
const FULL_ROUND_MS = 1000;

/** A stream retaining fewer entries than this is read again at once (no minRoundMs pause) while it moves. */
const PACE_MIN_RETAINED = 1000;

/** Longest close() waits for the loop, the lease release and QUIT (the sidecar's whole shutdown has 5 s). */
const CLOSE_MS = 1500;

/** A queue this term follows: its stream, state hash, accounting, lifecycle machine and cursors. */
interface FollowedQueue {
  queue: QueueRef;
  stream: string;
  acc: QueueAccounting;
  machine: QueueLifecycle;
  /** Last id fed to the machine (XREAD resumes here); the committed cursor may trail it by one held entry. */
  readId: string;
  cursor: string;
  /** The cursor Redis holds as far as this term knows; a commit finding another one reloads the queue. */
  committedId: string;
  /**
   * The last commit found the stream caught up and nothing was read since: the shard's heartbeat stands for
   * this queue's lag from now on, and an idle stream costs no write at all.
   */
  settled: boolean;
  /** Entries applied (in memory) since the last commit: held back by the commit pace. */
  unsent: number;
  /** Local clock at which its stream last returned entries (0: not this term). */
  movedAt: number;
  /** Local clock of the last commit of this queue (0: none this term). */
  committedAt: number;
  /** The stream's length the last commit returned (-1: unknown, or no stream). */
  retained: number;
  /** Local clock of the last read that returned entries (0: none this term). */
  readAt: number;
  /** Entries per ms its stream got between its last two reads that returned any (Infinity: unknown, or a full batch). */
  rate: number;
  /** BurstGuard.excess when it was last read: what came since beyond the known rates may all be in this stream. */
  excessAtRead: number;
}

interface Term {
  token: string;
  gen: number;
}

type XReadReply = Array<[Buffer, RawEntry[]]> | null;

/** A fenced script found a newer term's generation. */
class FencedOut extends Error {}
/** A queue's state carries a generation above this term's: a newer term, or a lost generation counter. */
class NewerGeneration extends Error {
  constructor(readonly stored: number) {
    super(`a queue's event state carries generation ${stored}`);
  }
}
/** Leadership changed while a pass was waiting on Redis: its in-memory state belongs to an old term. */
class TermChanged extends Error {}

export class EventReader {
  private readonly opts: typeof EVENT_READER_DEFAULTS;
  private readonly lifecycle: LifecycleOptions;
  private readonly cmd: RedisClient;
  private readonly scripts: {
    init: CallOf<typeof eventsInit>;
    commit: CallOf<typeof eventsCommit>;
    forget: CallOf<typeof eventsForget>;
    gone: CallOf<typeof eventsGone>;
    restart: CallOf<typeof eventsRestart>;
  };
  /**
   * XREAD BLOCK holds its connection, so reads get one of their own that waits through Redis outages. On
   * standalone Redis it is a raw connection whose replies stream-reply.ts parses itself (ioredis's decoding
   * was most of the reader's CPU); on Cluster it is ioredis, which sends each XREAD to the node of its slot.
   */
  private readonly blocking: RawConnection | RedisClient;
  private readonly cluster: boolean;
  private readonly lease: LeaderLease;
  private readonly readBudget: ReadBudget;
  private readonly keys: { lease: string; meta: string; index: string };
  private wanted = new Map<string, QueueRef>();
  private states = new Map<string, FollowedQueue>();
  private byStream = new Map<string, FollowedQueue>();
  /** The followed streams in groups that one XREAD (and one commit) may cover; rebuilt after each sync. */
  private groups: FollowedQueue[][] = [];
  private installedAt: string | undefined;
  private readonly budget: InFlightBudget;
  private synced = false;
  private readonly failureLog = new RepeatLimiter();
  /** Bumped by setQueues: a sync that started before a change must not mark the new list synced. */
  private wantedVersion = 0;
  private nextMaintenance = 0;
  private rotation = 0;
  /** Consecutive XREADs that returned nothing; a whole idle round over the groups pauses the reads. */
  private idleReads = 0;
  /** Consecutive idle rounds: each doubles the pause, up to idlePollMs. */
  private idleRounds = 0;
  /** Standalone: skips idle rounds while Redis's XADD count stands still (idle-gate.ts). */
  private readonly gate: IdleGate;
  /** Standalone: what Redis's XADD count grew by beyond the busy streams' known rates (read pacing, readPaced). */
  private readonly bursts: BurstGuard;
  private readonly idlePollMs: number;
  private readonly minRoundMs: number;
  /**
   * The round under way read, from some stream, a full batch, or entries at a rate that a minRoundMs pause would
   * bring to more than a quarter of what the stream retains, or from a stream retaining under PACE_MIN_RETAINED: the
   * next round starts at once, since a pause could let trimming take entries before they are read.
   */
  private crowded = false;
  /** Local clock at the start of the round before the one under way (entries per round → entries per pause). */
  private previousRoundStart: number | undefined;
  /** Local clock at the start of the round under way, and of the last round that read every group. */
  private roundStart: number | undefined;
  private lastRound: number | undefined;
  /** Local clock of the last heartbeat write (see heartbeat()). */
  private heartbeatAt = 0;
  private readonly heartbeatField: string;
  private loop: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** Queues whose applied entries wait for their commit (the commit pace). */
  private readonly deferred = new Set<FollowedQueue>();
  /** The round under way reads every stream (else only those that moved within QUIET_AFTER_MS). */
  private fullRound = true;
  /** Local clock at the start of the last full round; the next round is full when set. */
  private fullAt = 0;
  private forceFull = true;
  /** release() callers waiting for the loop to commit every deferred queue first. */
  private flushWaiters: Array<() => void> = [];
  /** Shutdown's last commit runs after `closing` is set: checkTerm lets it through. */
  private flushing = false;

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
      pollMs: o.pollMs ?? d.pollMs,
      lagRefreshMs: o.lagRefreshMs ?? d.lagRefreshMs,
    };
    this.idlePollMs = Math.max(this.opts.blockMs, o.idlePollMs ?? 5 * this.opts.blockMs);
    this.minRoundMs = Math.min(this.opts.blockMs, o.minRoundMs ?? this.opts.blockMs / 2);
    // One XADD count for the idle gate and the burst guard (LATENCY HISTOGRAM XADD, else INFO commandstats).
    const xadds = new XaddCounter(() => this.cmd as unknown as CounterClient);
    this.gate = new IdleGate(() => xadds.read(), this.opts.maintenanceMs);
    this.bursts = new BurstGuard(() => xadds.read());
    this.lifecycle = { ...LIFECYCLE_DEFAULTS, ...o.lifecycle };
    this.budget = o.inFlight ?? { max: this.lifecycle.maxInFlight, used: 0, holders: new Set() };
    this.readBudget = new ReadBudget({ maxBytes: this.opts.readBytes, maxCount: this.opts.count });
    this.heartbeatField = heartbeatField(o.shard);
    this.keys = { lease: ownKeys.leader(o.ownPrefix, o.shard), meta: ownKeys.eventsMeta(o.ownPrefix), index: ownKeys.eventsIndex(o.ownPrefix) };
    const conn = { url: o.redisUrl, clusterNodes: o.clusterNodes, log: o.log };
    // A hung Redis must not hold a renewal past the lease, nor a pass or shutdown forever: lease/3 per command.
    this.cmd = createRedis({ ...conn, name: 'queuelens:events', commandTimeoutMs: Math.ceil(this.opts.leaseMs / 3) });
    this.cluster = isCluster(this.cmd);
    const readName = 'queuelens:events:read';
    this.blocking = this.cluster
      ? createRedis({ ...conn, name: readName, maxRetriesPerRequest: null })
      : new RawConnection({ url: o.redisUrl, name: readName, log: o.log, readTimeoutMs: Math.ceil(this.opts.leaseMs / 3) });
    this.scripts = {
      init: bindScript(this.cmd, eventsInit),
      commit: bindScript(this.cmd, eventsCommit),
      forget: bindScript(this.cmd, eventsForget),
      gone: bindScript(this.cmd, eventsGone),
      restart: bindScript(this.cmd, eventsRestart),
    };
    this.lease = new LeaderLease({
      client: this.cmd,
      key: this.keys.lease,
      generationKey: ownKeys.eventsGeneration(o.ownPrefix),
      mayAcquire: o.mayAcquire,
      leaseMs: this.opts.leaseMs,
      log: o.log,
      onChange: (leader) => {
        // Whatever was in memory is stale for a new term: state is reloaded from Redis on the next pass.
        this.forgetStates();
        this.nextMaintenance = 0;
        this.readBudget.reset();
        this.o.onLeadership?.();
        if (leader) this.wake?.();
      },
    });
  }

  get isLeader(): boolean {
    return this.lease.isLeader;
  }

  /** Hands the lease to another replica (this one holds more than its share of shards). */
  async release(): Promise<void> {
    // What was read but not committed yet is committed first, so the next leader need not read it again.
    if (this.deferred.size > 0 && this.loop && !this.closing) {
      await new Promise<void>((resolve) => {
        this.flushWaiters.push(resolve);
        this.wake?.();
      });
    }
    return this.lease.release();
  }

  /** The queues to follow (from discovery). Takes effect on the next pass. */
  setQueues(queues: readonly QueueRef[]): void {
    const before = this.wanted;
    this.wanted = new Map(queues.map((q) => [queueId(q), q]));
    this.wantedVersion += 1;
    this.synced = false;
    // A new queue joins now, not after an idle pause.
    if ([...this.wanted.keys()].some((id) => !before.has(id))) {
      this.idleRounds = 0;
      this.wake?.();
    }
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
        this.settleFlushWaiters();
        await this.flushDeferred().catch(() => undefined);
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
          // A lease that ran out without a word (a renewal hanging on Redis): its queues are no longer followed.
          if (this.states.size > 0) this.forgetStates();
          await this.sleep(this.opts.leaseMs / 5);
          continue;
        }
        // Every write of this pass carries the generation of the term it started in; the token tells terms apart.
        const term = { token: this.lease.token, gen: this.lease.generation };
        if (this.flushWaiters.length > 0) {
          try {
            await this.flushDeferred(term);
          } finally {
            this.settleFlushWaiters();
          }
        }
        if (!this.synced) await this.sync(term);
        if (Date.now() >= this.nextMaintenance) await this.maintain(term);
        if (this.cluster) await this.pollRound(term);
        else await this.readBatch(term);
        if (this.lastRound !== undefined && Date.now() - this.heartbeatAt >= this.opts.lagRefreshMs) await this.heartbeat(term);
      } catch (err) {
        this.settleFlushWaiters();
        if (this.closing) break;
        if (err instanceof FencedOut) this.lease.lost('a fenced write found the lease gone');
        else if (err instanceof NewerGeneration) {
          // Still holding the lease means no newer term exists: the counter behind our number was lost. A number
          // above the stored one is taken at once (the state is reloaded under it, nothing is counted twice).
          await this.lease.advanceGeneration(err.stored);
        } else if (!(err instanceof TermChanged)) {
          // readBatch dropped the state of the group it failed on; sync() reloads just those queues.
          // A failure that persists repeats every half second: logged once a minute, with the count in between.
          const msg = (err as Error).message;
          const r = this.failureLog.check(msg);
          if (r.log)
            this.o.log.warn(
              { err: msg, ...(r.repeated ? { repeated: r.repeated } : {}) },
              'event reader pass failed; reloading the state of the queues it was reading',
            );
          this.synced = false;
          await this.sleep(500);
        }
      }
    }
  }

  private settleFlushWaiters(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of waiters) w();
  }

  /** Commits every queue whose commit the pace holds back (shutdown, lease handover), while leader. */
  private async flushDeferred(term?: Term): Promise<void> {
    if (this.deferred.size === 0 || !this.lease.isLeader) return;
    const t = term ?? { token: this.lease.token, gen: this.lease.generation };
    this.flushing = true;
    try {
      for (const group of this.groups) {
        const due = group.filter((s) => this.deferred.has(s));
        if (due.length > 0) await this.commit(t, due, new Set(), true);
      }
    } finally {
      this.flushing = false;
    }
  }

  private forgetStates(): void {
    this.deferred.clear();
    this.o.changes?.unfollow([...this.states.values()].map((s) => s.queue));
    for (const s of this.states.values()) s.machine.release();
    this.states.clear();
    this.byStream.clear();
    this.groups = [];
    this.synced = false;
    this.lastRound = undefined;
  }

  /**
   * One write per lagRefreshMs for the whole shard instead of one per queue: the Redis time at which the last
   * complete round started. Every group was read to its end since then, so each settled queue (stored lag 0)
   * was caught up at that moment; read-back ages its lag from the later of its own commit and this. A leader
   * whose reading stalls stops writing it, and every replica sees the lag grow, as before.
   */
  private async heartbeat(term: Term): Promise<void> {
    const round = this.lastRound as number;
    const now = await this.redisNow();
    this.checkTerm(term);
    await this.cmd.hset(this.keys.meta, this.heartbeatField, now - Math.max(0, Date.now() - round));
    this.heartbeatAt = Date.now();
  }

  /** Loads the state of newly wanted queues (or all, after a leadership change) and drops unwanted ones. */
  private async sync(term: Term): Promise<void> {
    const version = this.wantedVersion;
    for (const [id, s] of this.states) {
      if (this.wanted.has(id)) continue;
      this.drop(s);
      // Obliterated (its stream is gone): a queue re-created under the name starts from its new stream's start.
      await this.scripts.restart({ hash: this.hashOf(s), gen: term.gen, stream: s.stream });
      this.o.changes?.mark([s.queue], ['accounting']);
    }
    const missing = [...this.wanted].filter(([id]) => !this.states.has(id)).map(([, q]) => q);
    if (this.installedAt === undefined) {
      // Once per process: the first reader anywhere fixes it, every later one reads the same value.
      await this.cmd.hsetnx(this.keys.meta, 'installedAt', await this.redisNow());
      this.installedAt = (await this.cmd.hget(this.keys.meta, 'installedAt')) ?? '0';
    }
    // A prefix this shard has synced before: its queues without state were born (or appeared) since.
    // Every prefix this reader watches counts as watched from its first sync on, even while it holds no queue
    // (then the first queue to appear under it is new, and read from its oldest retained entry). Not before the
    // first queue list arrived: an empty list then means "not discovered yet", not "no queues".
    const configured = this.wantedVersion > 0 ? (this.o.prefixes ?? []) : [];
    const prefixes = [...new Set([...missing.map((q) => q.prefix), ...configured])];
    const watchedField = (prefix: string) => `watched:${this.o.shard ?? 'all'}:${prefix}`;
    const watched = prefixes.length === 0 ? [] : await this.cmd.hmget(this.keys.meta, ...prefixes.map(watchedField));
    const known = new Set(prefixes.filter((_, i) => watched[i] !== null));
    // Claimed and loaded INIT_QUEUES at a time: the claim script, like a commit, holds Redis per queue it covers.
    for (const group of groupBySlot(missing, (q) => queueKey(q, 'events'), Math.min(this.opts.streamsPerRead, INIT_QUEUES), this.cluster)) {
      await this.load(term, group, known);
    }
    // Only after every queue of the first sync is loaded: those were there before this shard watched the prefix.
    const now = prefixes.some((p) => !known.has(p)) ? await this.redisNow() : 0;
    for (const p of prefixes) if (!known.has(p)) await this.cmd.hsetnx(this.keys.meta, watchedField(p), now);
    this.groups = groupBySlot([...this.states.values()], (s) => s.stream, this.opts.streamsPerRead, this.cluster);
    this.rotation = 0;
    this.forceFull = true;
    this.roundStart = undefined;
    this.lastRound = undefined;
    this.gate.moved();
    this.synced = version === this.wantedVersion;
  }

  /**
   * The hash holding a queue's cursor and accounting: made when a restart or a commit needs it, not held per queue
   * (a queue that never moves commits rarely; 10,000 of them held ~0.5 MB of these names).
   */
  private hashOf(s: FollowedQueue): string {
    return ownKeys.eventsQueue(this.o.ownPrefix, s.queue);
  }

  /** Claims a group of queues (one slot on Cluster) for this term and loads their state. */
  private async load(term: Term, queues: QueueRef[], watchedPrefixes: ReadonlySet<string>): Promise<void> {
    const own = this.o.ownPrefix;
    const hashes = queues.map((q) => ownKeys.eventsQueue(own, q));
    const streams = queues.map((q) => queueKey(q, 'events'));
    if (this.cluster && hashes.some((h, i) => keySlot(h) !== keySlot(streams[i] as string))) {
      // Discovery already skips queues whose keys span slots; this guards the pairing of our key with theirs.
      this.o.log.warn({ queues: queues.map((q) => q.name) }, 'event state and stream of a queue are in different Cluster slots; not reading its events');
      return;
    }
    const init = await this.scripts.init({
      gen: term.gen,
      installedAt: this.installedAt ?? '0',
      queues: queues.map((q, i) => ({ hash: hashes[i]!, stream: streams[i]!, fresh: watchedPrefixes.has(q.prefix) })),
    });
    if ('newerGeneration' in init) throw new NewerGeneration(init.newerGeneration);
    const { cursors } = init;
    this.checkTerm(term);
    const now = await this.redisNow();
    await this.cmd.zadd(this.keys.index, ...queues.flatMap((q) => [now, eventsMember(q)]));

    const replies = await Promise.all(hashes.map((h) => this.cmd.hgetall(h)));
    const histories = await this.history(streams, cursors);
    this.checkTerm(term);
    for (let i = 0; i < queues.length; i++) {
      const acc = QueueAccounting.fromHash(replies[i] as Record<string, string>);
      const machine = new QueueLifecycle(acc, this.lifecycle, acc.jobNames(), this.budget);
      // Replay what is still retained before the cursor, uncounted, so jobs already in flight are known.
      machine.replay(histories[i] ?? []);
      const cursor = cursors[i] as string;
      const q = queues[i] as QueueRef;
      const state: FollowedQueue = {
        queue: q,
        stream: streams[i] as string,
        acc,
        machine,
        readId: cursor,
        cursor,
        committedId: cursor,
        settled: false,
        unsent: 0,
        movedAt: 0,
        committedAt: 0,
        retained: -1,
        readAt: 0,
        rate: Infinity,
        excessAtRead: 0,
      };
      this.states.set(queueId(q), state);
      this.byStream.set(state.stream, state);
    }
    this.o.changes?.follow(queues);
  }

  /**
   * Up to rebuildEntries entries of each stream up to and including its cursor, oldest first. Read
   * backwards in slices of 200, so that no single XREVRANGE holds Redis for long.
   */
  private async history(streams: string[], cursors: string[]): Promise<StreamEntry[][]> {
    const out: StreamEntry[][] = streams.map(() => []);
    let ends: Array<string | undefined> = cursors.map((c) => (c === '0-0' ? undefined : c));
    while (ends.some((e) => e !== undefined)) {
      // Per read, like XREAD: plan.streams streams of plan.count entries in one pipeline; the others wait.
      const open = ends.flatMap((e, i) => (e === undefined ? [] : [i]));
      const plan = this.readBudget.plan(open.length);
      const slice = Math.min(200, plan.count);
      const pipe = this.cmd.pipeline();
      const asked: Array<[index: number, count: number]> = [];
      for (const i of open.slice(0, plan.streams)) {
        const n = Math.min(slice, this.opts.rebuildEntries - (out[i] as StreamEntry[]).length);
        pipe.xrevrangeBuffer(streams[i] as string, ends[i] as string, '-', 'COUNT', n);
        asked.push([i, n]);
      }
      const replies = (await pipe.exec()) ?? [];
      const next: Array<string | undefined> = [...ends];
      for (const [i] of asked) next[i] = undefined;
      asked.forEach(([i, n], k) => {
        const [err, reply] = replies[k] ?? [];
        const { entries, largest } = decodeEntries(err ? [] : (reply as RawEntry[]));
        this.readBudget.observe(largest);
        const acc = out[i] as StreamEntry[];
        for (const e of entries) acc.push(e);
        const last = acc.at(-1)?.id;
        if (entries.length === n && acc.length < this.opts.rebuildEntries && last) next[i] = `(${last}`;
      });
      this.readBudget.grow();
      ends = next;
    }
    return out.map((h) => h.reverse());
  }

  /** Standalone: one XREAD over one group of streams, then one commit script call for what it read. */
  private async readBatch(term: Term): Promise<void> {
    const groups = this.groups.length;
    if (groups === 0) {
      await this.sleep(this.opts.blockMs);
      return;
    }
    if (groups > 1 && this.idleReads >= groups && this.deferred.size === 0) {
      // A whole round found nothing. A blocking XREAD costs Redis about 1 µs per stream it waits on, five
      // times a non-blocking one, so idle streams are polled instead, blockMs apart at first and less often
      // the longer they stay idle (up to idlePollMs): at rest about 0.1 µs of Redis time per stream per
      // second, and the first event after a quiet spell waits at most idlePollMs. Nothing else is sent
      // meanwhile: no commit (a settled queue is not written) and one heartbeat per round.
      // Redis's XADD count gates the next round (idle-gate.ts): unchanged, the round is skipped, and the checks
      // back off as the rounds did (an INFO of a Redis that served many kinds of commands takes 20-80 µs).
      this.idleReads = 0;
      this.idleRounds += 1;
      // The gate's base is taken before a round that reads every stream.
      this.forceFull = true;
      await this.sleep(Math.min(this.idlePollMs, this.opts.blockMs * 2 ** Math.min(20, this.idleRounds - 1)));
      const checkedAt = Date.now();
      if (await this.gate.skip()) {
        // Nothing was written to any stream since the last round found them all at their end: as good as a round.
        this.lastRound = checkedAt;
        this.idleReads = groups;
      } else {
        // The gate took its base now: a whole round of every stream, from the first group, must follow before it
        // may skip (a partial round, or the rest of one, would leave a quiet stream's new entry unread).
        this.rotation = 0;
      }
      return;
    }
    const index = this.rotation % groups;
    if (index === 0 && this.roundStart !== undefined && !this.crowded) {
      const early = this.roundStart + this.minRoundMs - Date.now();
      if (early > 0) {
        await this.sleep(early);
        return;
      }
    }
    this.rotation += 1;
    const pace = this.commitPaceMs();
    const spacing = this.paceSpacingMs(pace);
    if (index === 0) {
      this.previousRoundStart = this.roundStart;
      this.roundStart = Date.now();
      this.crowded = false;
      // Half the spacing apart (at most half the lag's grace, as before looks were predicted: a burst into a quiet
      // stream waits no longer for its read), and at once when busy queues fall due (a refresh before a predicted
      // look: a quiet stream's first event is read for it too).
      const fullEvery = Math.max(FULL_ROUND_MS, Math.min(pace, Math.min(spacing, this.graceMs()) / 2));
      this.fullRound = groups === 1 || this.forceFull || this.roundStart - this.fullAt >= fullEvery;
      if (this.fullRound) this.fullAt = this.roundStart;
      this.forceFull = false;
    }
    const all = this.groups[index] as FollowedQueue[];
    // A round that is not full names only the streams that moved lately (a group with none is not read at all); no
    // round names a busy stream read less than the pace ago that can safely wait (readPaced).
    const now = Date.now();
    if (index === 0) await this.bursts.check(this.states.values(), now);
    let paced = false;
    const group = all.filter((s) => {
      if (!this.fullRound && now - s.movedAt >= Math.max(QUIET_AFTER_MS, 2 * Math.min(spacing, this.graceMs())) && !this.deferred.has(s)) return false;
      if (!this.readPaced(s, now, pace, spacing)) return true;
      paced = true;
      return false;
    });
    // One group blocks the full time. Several are read in turn without blocking, so a busy group is never
    // starved by idle ones.
    const got = group.length > 0 && (await this.readGroupOrForget(term, group, groups === 1 ? this.opts.blockMs : undefined));
    // A round that found nothing, full or not, leads to the idle pause; its gate check never skips the first time
    // after entries were read (moved()), and a round after a check that did not skip is full (forceFull). A busy
    // stream left out is not idle: the rounds (and the burst guard's checks) go on minRoundMs apart.
    this.idleReads = got || paced ? 0 : this.idleReads + 1;
    if (got || paced) {
      this.idleRounds = 0;
      this.gate.moved();
    }
    if (index === groups - 1 && this.roundStart !== undefined) {
      // The heartbeat vouches for every stream read to its end since: full rounds only.
      if (this.fullRound) this.lastRound = this.roundStart;
    }
  }

  /**
   * Cluster: every group read once without blocking, all at once (the client writes each XREAD to the node
   * that owns its slot), then committed; a round that found nothing sleeps pollMs. No blocking read, since
   * with per-queue hash tags a group is one stream and blocking on one would starve the others.
   */
  private async pollRound(term: Term): Promise<void> {
    // Groups read at once share the read budget: at most plan().streams streams are in flight together.
    const total = this.groups.reduce((n, g) => n + g.length, 0);
    const width = this.readBudget.plan(total).streams;
    const start = Date.now();
    let got = false;
    for (let i = 0; i < this.groups.length;) {
      const chunk: FollowedQueue[][] = [];
      let streams = 0;
      for (; i < this.groups.length && (chunk.length === 0 || streams + (this.groups[i] as FollowedQueue[]).length <= width); i++) {
        chunk.push(this.groups[i] as FollowedQueue[]);
        streams += (this.groups[i] as FollowedQueue[]).length;
      }
      const read = await Promise.all(chunk.map((g) => this.readGroupOrForget(term, g, undefined, streams)));
      got ||= read.some(Boolean);
    }
    if (this.groups.length > 0) this.lastRound = start;
    if (!got) await this.sleep(this.groups.length === 0 ? this.opts.blockMs : this.opts.pollMs);
  }

  /**
   * On a failure a commit may or may not have applied: this group's state is reloaded from Redis rather than
   * guessed (sync() loads what is missing). The other groups' state is unaffected, and reloading them would
   * replay their history for nothing.
   */
  private async readGroupOrForget(term: Term, group: FollowedQueue[], block: number | undefined, inFlight = group.length): Promise<boolean> {
    try {
      return await this.readGroup(term, group, block, inFlight);
    } catch (err) {
      if (!(err instanceof FencedOut || err instanceof TermChanged)) {
        for (const s of group) this.drop(s);
      }
      throw err;
    }
  }

  /**
   * Reads one group (streams of one slot), applies what came, commits. True when anything was read. The read
   * budget is per read: a group wider than it allows is read in slices, one XREAD each, and each reply is
   * applied (its return values never become strings) before the next is asked for. `inFlight`: streams read
   * at the same time by other calls (Cluster), which share the budget.
   */
  private async readGroup(term: Term, group: FollowedQueue[], block: number | undefined, inFlight = group.length): Promise<boolean> {
    const got = new Set<FollowedQueue>();
    for (let i = 0; i < group.length;) {
      const plan = this.readBudget.plan(inFlight);
      const width = Math.max(1, Math.floor((plan.streams * group.length) / inFlight));
      const slice = group.slice(i, i + width);
      // Only a read of the whole group blocks: a slice blocking would hold back the rest of its group.
      const wait = slice.length === group.length ? block : undefined;
      let batches: StreamBatch[];
      try {
        batches = await this.xread(plan.count, wait, [...slice.map((s) => s.stream), ...slice.map((s) => s.readId)], slice.length * plan.count > 1);
      } catch (err) {
        if (!(err instanceof ReplyTooLargeError)) throw err;
        // Entries larger than any seen: start again from one entry of one stream, which learns their size.
        this.readBudget.reset();
        continue;
      }
      this.checkTerm(term);
      this.readBudget.grow();
      for (const { stream, entries, largest } of batches) {
        const s = this.byStream.get(stream);
        if (!s) continue;
        this.readBudget.observe(largest);
        s.machine.apply(entries, entries.length < plan.count);
        if (entries.length >= plan.count) this.crowded = true;
        s.readId = (entries.at(-1) as StreamEntry).id;
        const at = Date.now();
        s.rate = entries.length >= plan.count || s.readAt === 0 ? Infinity : entries.length / Math.max(1, at - s.readAt);
        s.readAt = at;
        s.excessAtRead = this.bursts.excess;
        s.movedAt = at;
        got.add(s);
      }
      i += slice.length;
    }
    // Read in slices, none of which blocked: an idle group must not turn into a busy loop.
    if (got.size === 0 && block !== undefined && this.readBudget.plan(group.length).streams < group.length) await this.sleep(Math.min(block, 50));
    // Entries are written by the script that changed the queue's keys: those counts are worth a new look now.
    if (got.size > 0)
      this.o.changes?.mark(
        [...got].map((s) => s.queue),
        ['state'],
      );
    // A stream that returned nothing is at its end: a held `waiting prev=active` there is a retry.
    for (const s of group) if (!got.has(s)) s.machine.flush();
    await this.commit(term, group, got);
    return got.size > 0;
  }

  /**
   * One XREAD of `streams` (keys, then ids); only the streams that returned entries. `capped`: the reply may not
   * grow past the read budget (standalone; a read of a single entry is never capped, it could not be smaller).
   */
  private async xread(count: number, block: number | undefined, streams: string[], capped: boolean): Promise<StreamBatch[]> {
    const b = this.blocking;
    if (b instanceof RawConnection) {
      return parseXreadReply(await b.xread({ count, block, streams, maxReplyBytes: capped ? this.readBudget.maxBytes + REPLY_FRAMING : undefined }));
    }
    const reply = (
      block === undefined
        ? await b.xreadBuffer('COUNT', count, 'STREAMS', ...streams)
        : await b.xreadBuffer('COUNT', count, 'BLOCK', block, 'STREAMS', ...streams)
    ) as XReadReply;
    const out: StreamBatch[] = [];
    for (const [stream, raw] of reply ?? []) if (raw.length > 0) out.push({ stream: stream.toString(), ...decodeEntries(raw) });
    return out;
  }

  /**
   * Commits the queues that applied entries, and once more each queue whose stream was found at its end since
   * (that commit settles its lag and loss count) unless its last commit already found nothing past its cursor.
   * A settled queue with nothing new is not written at all.
   */
  private async commit(term: Term, group: FollowedQueue[], got: ReadonlySet<FollowedQueue>, force = false): Promise<void> {
    const pending: Array<{ s: FollowedQueue; commit: EventsCommitQueue; settles: boolean }> = [];
    const now = Date.now();
    let paceMs: number | undefined;
    for (const s of group) {
      const { id, count } = s.machine.takeApplied();
      if (id !== undefined && count > 0) {
        s.acc.reader('read', count);
        s.cursor = id;
        s.unsent += count;
      }
      if (s.unsent === 0) {
        // Nothing read, but maybe counted: another queue's job may have evicted one of this queue's. Read but
        // held back (one entry waiting for its pair): committed with the next read.
        const fields = s.acc.dirtyFields();
        if (fields.length === 0 && (s.settled || got.has(s))) continue;
        pending.push({
          s,
          commit: { hash: this.hashOf(s), stream: s.stream, committedId: s.committedId, cursor: s.cursor, applied: 0, fields },
          settles: !got.has(s),
        });
      } else if (!force && this.mayDefer(s, now, (paceMs ??= this.commitPaceMs()))) {
        this.deferred.add(s);
      } else {
        const fields = s.acc.dirtyFields();
        pending.push({
          s,
          commit: { hash: this.hashOf(s), stream: s.stream, committedId: s.committedId, cursor: s.cursor, applied: s.unsent, fields },
          settles: false,
        });
      }
    }
    for (let i = 0; i < pending.length; i += COMMIT_QUEUES) {
      const chunk = pending.slice(i, i + COMMIT_QUEUES);
      const results = await this.scripts.commit({
        gen: term.gen,
        graceMs: this.graceMs(),
        heartbeatField: this.heartbeatField,
        queues: chunk.map((p) => p.commit),
      });
      if (!results) throw new FencedOut();
      this.checkTerm(term);
      this.o.changes?.mark(
        chunk.map((p) => p.s.queue),
        ['accounting'],
      );
      chunk.forEach(({ s, settles, commit }, k) => {
        s.acc.clearDirty();
        s.committedId = s.cursor;
        s.unsent = 0;
        // As of the read it covers: the next read, a pace after this one, finds the commit due too.
        s.committedAt = got.has(s) ? Math.min(now, s.readAt) : now;
        s.retained = results[k]?.length ?? -1;
        this.deferred.delete(s);
        // Nothing was read before this commit, or it applied nothing and the script found nothing past the cursor:
        // the stream was at its end, the script stored lag 0 (vouched for by the heartbeat from then on) and the
        // loss, so the next empty read of it needs no commit of its own. A commit that applied entries stays open
        // (the script ages its lag from the commit, with no grace): its stream keeps moving and what comes next may
        // wait for the pace, so the next read that finds the stream at its end commits it once more to settle it.
        const result = results[k];
        s.settled = settles || (result?.caughtUp === true && commit.applied === 0);
        if (result && result.length >= 0 && commit.applied > 0) {
          // The entries it read came in over about one round: at that rate, what would a pause of minRoundMs let in?
          const roundMs = Math.max(1, Date.now() - (this.previousRoundStart ?? this.roundStart ?? Date.now()));
          const perPause = (commit.applied * Math.max(roundMs, this.minRoundMs)) / roundMs;
          // A stream retaining little (a small maxLenEvents, or a new stream whose cap is not known yet) is never
          // left waiting: estimates of a rate are rough, and a burst could outrun what it keeps.
          if (result.length < PACE_MIN_RETAINED || perPause * 4 > result.length) this.crowded = true;
        }
        const n = result?.lost ?? 0;
        if (n > 0) {
          // Entries of this queue were trimmed before they were read: tracked jobs may have moved on unseen.
          s.machine.resetJobs();
          this.o.log.warn({ queue: s.queue.name, prefix: s.queue.prefix, lost: n }, 'events were trimmed before the reader saw them');
        }
      });
    }
  }

  /**
   * Whether a queue's commit may wait (the pace, `paceMs`): committed less than that ago, and what was read since is
   * at most a quarter of what its stream retains, at least DEFER_MIN_RETAINED (trimming could otherwise take entries
   * a next leader must read). A young stream below its cap qualifies too: nothing is trimmed from it yet.
   */
  private mayDefer(s: FollowedQueue, now: number, paceMs: number): boolean {
    // A settled queue's lag is vouched for by the heartbeat: what it reads now is committed at once, which opens it.
    return !s.settled && now - s.committedAt < paceMs && s.retained >= DEFER_MIN_RETAINED && s.unsent * 4 <= s.retained;
  }

  /**
   * The pace of a busy queue's commits and reads: the age at which they fall due now. Not bounded by the lag's grace:
   * paced reads and deferred commits are for open queues only, whose exported lag ages from their last commit (no
   * grace, no heartbeat), so however long the pace, the lag says how old their counters are.
   */
  private commitPaceMs(): number {
    return this.o.commitPaceMs?.() ?? COMMIT_PACE_MS;
  }

  /** See EventReaderOptions.paceSpacingMs: at least `pace`. */
  private paceSpacingMs(pace: number): number {
    return Math.max(pace, this.o.paceSpacingMs?.() ?? pace);
  }

  /**
   * How long a caught-up queue's lag stays 0 after its commit or the shard's heartbeat (stored with each commit): the
   * heartbeat stands for the round that started before the longest pause between rounds, one blocking read of a
   * single group, or the idle pause of several (standalone; Cluster polls pollMs apart).
   */
  private graceMs(): number {
    const { lagRefreshMs, blockMs } = this.opts;
    return 2 * lagRefreshMs + (!this.cluster && this.groups.length > 1 ? this.idlePollMs : blockMs);
  }

  /**
   * Standalone: whether a busy stream is left out of a round. Its entries would wait for their commit anyway (the
   * pace), and an XREAD costs Redis about 3.5 µs per stream that returns entries plus 0.3 µs per entry, so a busy
   * stream is read once per pace rather than every round. Only while it can safely wait: entries read from it less
   * than a pace ago, at a known rate; what is unsent, what that rate brings until the pace is up, and whatever Redis's
   * XADD count grew by beyond every known rate since its read (burst-guard.ts: a burst anywhere may be in this
   * stream) stay within a quarter of what it retains, at least DEFER_MIN_RETAINED, as for a deferred commit. A stream
   * retaining fewer (young, or a small maxLenEvents) is read every round: the guard sees a burst only up to a second
   * late, and a stream capped at 120 takes that burst in a tenth of a second (adversary-s23-burst.test.ts: 40 jobs per
   * 100 ms lost 282 of 1,950 entries, none when read every round).
   */
  private readPaced(s: FollowedQueue, now: number, paceMs: number, spacingMs: number): boolean {
    // Never a settled queue: the heartbeat, which vouches for every stream a full round read to its end, would vouch
    // for what such a stream holds unread (an open queue's lag ages from its commit instead).
    if (s.settled || s.readAt === 0 || !Number.isFinite(s.rate) || now - s.readAt >= paceMs || s.retained < DEFER_MIN_RETAINED) return false;
    // What it takes in until its next read: at most the spacing after this one (a refresh due later than the pace).
    return (s.unsent + s.rate * spacingMs + this.bursts.since(s.readAt, s.excessAtRead)) * 4 <= s.retained;
  }

  /**
   * Forgets tracked jobs that Redis no longer holds although the stream never said so: drain(), clean() and
   * obliterate() remove waiting and delayed jobs without a per-job event, and until then those ghosts hold the
   * shared in-flight budget. A job is a ghost only if its hash was gone while this reader had applied every
   * entry written so far (checked atomically with the stream's last id): a removal that wrote an event would
   * have been applied. At most RECONCILE_IDS ids per queue per pass, oldest first.
   */
  private async reconcile(term: Term): Promise<void> {
    for (const s of [...this.states.values()]) {
      if (s.machine.inFlight === 0) continue;
      const ids = s.machine.trackedIds(RECONCILE_IDS);
      const base = s.stream.slice(0, -'events'.length);
      let gone = 0;
      for (let i = 0; i < ids.length; i += 500) {
        const slice = ids.slice(i, i + 500);
        const reply = await this.scripts.gone({ stream: s.stream, base, ids: slice });
        this.checkTerm(term);
        if (this.states.get(queueId(s.queue)) !== s || compareIds(s.readId, reply.lastId) < 0) break;
        gone += s.machine.forgetGone(slice.filter((_, k) => reply.gone[k]));
      }
      if (gone > 0) this.o.log.info({ queue: s.queue.name, prefix: s.queue.prefix, gone }, 'forgot tracked jobs removed without an event (drain, clean)');
    }
  }

  /**
   * Marks the followed queues as present and deletes the state of this shard's queues gone longer than the
   * retention. The index is shared by all shards; marking is harmless from any replica, so it is not fenced.
   */
  private async maintain(term: Term): Promise<void> {
    this.nextMaintenance = Date.now() + this.opts.maintenanceMs;
    await this.reconcile(term);
    const now = await this.redisNow();
    const members = [...this.wanted.values()].map(eventsMember);
    for (let i = 0; i < members.length; i += 500) {
      await this.cmd.zadd(this.keys.index, ...members.slice(i, i + 500).flatMap((m) => [now, m]));
    }
    this.checkTerm(term);
    const cutoff = now - this.opts.retentionMs;
    const mine = this.o.isMine ?? (() => true);
    for (let offset = 0; ; offset += 100) {
      const stale = await this.cmd.zrangebyscore(this.keys.index, '-inf', cutoff, 'LIMIT', offset, 100);
      const queues = stale.map((m) => [m, parseEventsMember(m)] as const).filter((x): x is [string, QueueRef] => x[1] !== null && mine(x[1]));
      let forgotten = 0;
      for (const group of groupBySlot(queues, ([, q]) => ownKeys.eventsQueue(this.o.ownPrefix, q), 100, this.cluster)) {
        const keys = group.map(([, q]) => ownKeys.eventsQueue(this.o.ownPrefix, q));
        const done = await this.scripts.forget({ gen: term.gen, hashes: keys });
        const gone = group.filter((_, i) => done[i]).map(([m]) => m);
        this.o.changes?.mark(
          group.filter((_, i) => done[i]).map(([, q]) => q),
          ['accounting'],
        );
        if (gone.length > 0) await this.cmd.zrem(this.keys.index, ...gone);
        forgotten += gone.length;
      }
      if (forgotten > 0) this.o.log.info({ forgotten }, 'deleted event state of queues gone longer than the retention');
      if (stale.length < 100) break;
      offset -= forgotten;
    }
  }

  /** Forgets a queue's state, and gives its tracked jobs back to the shared in-flight budget. */
  private drop(s: FollowedQueue): void {
    this.o.changes?.unfollow([s.queue]);
    this.deferred.delete(s);
    s.machine.release();
    this.states.delete(queueId(s.queue));
    this.byStream.delete(s.stream);
  }

  private async redisNow(): Promise<number> {
    const [sec, usec] = await this.cmd.time();
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  }

  private checkTerm(term: Term): void {
    if ((this.closing && !this.flushing) || this.lease.token !== term.token) throw new TermChanged();
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
