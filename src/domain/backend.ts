// Owns the seam between queuelens and the store BullMQ runs on: small interfaces over plain data. The sidecar and
// `top` take a SidecarBackend (which queues, their snapshots, the event follower, the accounting read back) and
// know nothing of the store; backends/ assembles one per store. Under a backend, collector/ turns a
// QueueStateSource's readings into snapshots (redis/queue-state-source.ts reads them from BullMQ on Redis);
// postgres/snapshot.ts (BullMQ on PostgreSQL) is a SnapshotSource of its own.
import type { QueueEventAccounting } from './event-accounting.js';
import type { QueueRef } from './queue-ref.js';
import type { CollectionSnapshot } from './queue-snapshot.js';

/** One collection of every watched queue, as plain data: what every consumer above the seam reads. */
export interface SnapshotSource {
  /**
   * `full`: read every queue and count every worker now, reusing nothing a change-driven source keeps between
   * passes (an explicit refresh).
   */
  collect(o?: CollectOptions): Promise<CollectionSnapshot>;
}

export interface CollectOptions {
  full?: boolean;
}

/** One queue as a backend read it in one look: counts, and times in ms of the backend's clock (-1: none). */
export interface QueueReading {
  /** 0: the queue is gone (obliterated). */
  metaExists: number;
  paused: number;
  waiting: number;
  active: number;
  prioritized: number;
  delayed: number;
  waitingChildren: number;
  completed: number;
  failed: number;
  delayedOverdue: number;
  /** When the next job to run became eligible. */
  headEligibleMs: number;
  oldestActiveStartMs: number;
  /** Active jobs whose lock expired, among the `activeLocksChecked` the look checked. */
  orphanedActive: number;
  activeLocksChecked: number;
  limiterPttl: number;
  limiterCount: number;
  globalRateMax: number;
  /** Distinct workers holding the locks checked. */
  lockOwners: number;
  /**
   * When the earliest delayed job not yet overdue falls due (-1: none): delayedOverdue changes then, with no event,
   * so a reading kept between looks (collector/change-plan.ts) knows when it goes out of date.
   */
  nextDueMs: number;
  /**
   * The earliest an active job's lock can expire with no event (should its worker die now; -1: none can), so a
   * kept reading knows how long no orphan can appear unseen.
   */
  lockExpiresMs: number;
}

export interface QueueLook {
  ref: QueueRef;
  /** The backend's clock when the queue was read, ms. */
  nowMs: number;
  /** undefined: the queue could not be read (a key of the wrong type); only that queue is skipped. */
  reading: QueueReading | undefined;
}

/** Workers connected per queue (queueId), and the queues of worker connections under the watched prefixes not asked for. */
export interface WorkerCount {
  byQueue: Map<string, number>;
  unknown: QueueRef[];
}

/** Whether the backend answers, and where it is, for a sentence a user can act on. */
export interface BackendLink {
  up: boolean;
  where?: string;
  lastError?: string;
}

/** Snapshot reads and worker discovery: the collector's side of a backend. */
export interface QueueStateSource {
  /** Every queue of `refs`, each checking at most its share of `activeCheckLimit` active-job locks per look. */
  read(refs: readonly QueueRef[], activeCheckLimit: number): Promise<QueueLook[]>;
  /** Active jobs whose lock expired among the active ones from position `from` to `total` (those a look left unchecked). */
  countOrphans(ref: QueueRef, from: number, total: number): Promise<number>;
  /** Workers per queue; undefined when the backend will not list its connections (then the count is absent). */
  workers(refs: readonly QueueRef[], prefixes: readonly string[]): Promise<WorkerCount | undefined>;
  link(): BackendLink;
}

/** The queues a backend watches: discovered on a slow timer (or a fixed list), read by every collection. */
export interface QueueList {
  /** One discovery pass; rejects when the store cannot be read (the caller retries on a short timer). */
  runPass(): Promise<void>;
  /** The watched queues, capped (--max-queues); the same array until the list changes. */
  queues(): readonly QueueRef[];
  /** Changes whenever queues() does, so a follower is handed a new list only then. */
  readonly generation: number;
  /** Discovery passes completed so far (0: the list is only what the configuration fixed). */
  completedPasses(): number;
}

/**
 * The leader-elected event reader of a backend: while it holds the lease (of one shard or all), it reads the
 * store's job events for the queues it is given and persists their accounting, fenced, in queuelens's own keys or
 * schema. Every replica, leader or not, reads that accounting back (SidecarBackend.readAccounting).
 */
export interface EventFollower {
  /** Begins competing for the lease and reading; returns once the first attempt is under way. */
  start(): Promise<void>;
  /** The queues to follow (discovery's list); queues no longer listed are dropped. */
  setQueues(refs: readonly QueueRef[]): void;
  /** Holds a lease now, and it has surely not expired (a hung renewal cannot keep this true). */
  readonly isLeader: boolean;
  /** Stops reading and releases the lease so a standby takes over at once. Idempotent. */
  close(): Promise<void>;
}

/**
 * Everything the sidecar (and `top`) reads from the store BullMQ runs on. `Admin` is a store-specific extra the
 * admin routes need (on Redis, the connection Bull Board and the dead-letter routes use); absent elsewhere.
 */
export interface SidecarBackend<Admin = unknown> {
  readonly kind: 'redis' | 'postgres';
  /**
   * Opens the connection(s). Rejects when the store does not answer yet; the backend keeps retrying in the
   * background (collections fail with `up 0` meanwhile), so the caller logs it and goes on. No-op once called.
   */
  connect(): Promise<void>;
  readonly discovery: QueueList;
  /** One collection of every queue discovery lists. */
  readonly snapshots: SnapshotSource;
  /** Undefined when event reading is off (--no-events) or the backend is read-only (`top`). */
  readonly events?: EventFollower;
  /**
   * Subscribes to "the event follower saw queues change" (unsubscribe returned): the sidecar then collects within
   * about a second. Undefined when collection is not driven by change.
   */
  readonly onChange?: (listener: () => void) => () => void;
  /** The accounting the leader(s) persisted, what every replica renders; undefined when the backend has none. */
  readAccounting?(): Promise<QueueEventAccounting[]>;
  /**
   * Someone looked at the data (/metrics, /api/queues, the status page): with change-driven collection a busy queue
   * is brought up to date about as often as that (collector/demand-pace.ts). Cheap and synchronous; optional.
   */
  requested?(): void;
  /** Where the backend points, for the start-up log: no password, token or other secret. */
  where(): Record<string, unknown>;
  readonly admin?: Admin;
  /** Closes the follower (if still open) and every connection. Idempotent. */
  close(): Promise<void>;
}
