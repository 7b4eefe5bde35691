// Owns the seam between queuelens and the store BullMQ runs on: small interfaces over plain data. Above it, the
// collection cycle (sidecar/collection-cycle.ts), metrics, status and HTTP take a SnapshotSource; below it,
// collector/ turns a QueueStateSource's readings into snapshots, and redis/queue-state-source.ts reads them from
// BullMQ on Redis. A second backend (postgres/snapshot.ts: BullMQ on PostgreSQL) is a SnapshotSource beside it.
import type { QueueRef } from './queue-ref.js';
import type { CollectionSnapshot } from './queue-snapshot.js';

/** One collection of every watched queue, as plain data: what every consumer above the seam reads. */
export interface SnapshotSource {
  collect(): Promise<CollectionSnapshot>;
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
