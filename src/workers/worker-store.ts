// Owns what a queuelens worker needs from the store BullMQ runs on, behind one small interface: the BullMQ Worker,
// the dead-letter queue, whether the store is reachable (for /readyz), and a hook for "reachable again". Redis (the
// default) and BullMQ's PostgreSQL backend (`--backend postgres`) each implement it; create-worker.ts is the same for both.
import { Worker, type Processor, type WorkerOptions } from 'bullmq';
import type pg from 'pg';
import { DeadLetters } from '../dead-letters/dead-letters.js';
import type { DeadLetterQueue } from '../dead-letters/dead-letter-record.js';
import { PostgresDeadLetters } from '../dead-letters/postgres-dead-letters.js';
import { createPgPool, postgresWorker, type PostgresTarget } from '../jobs/postgres-store.js';
import type { Logger } from '../log/logger.js';
import { createRedis, type RedisClient } from '../redis/connection.js';
import { assertClusterPrefix } from '../redis/slots.js';

export type StoreWorkerOptions = Omit<WorkerOptions, 'connection' | 'prefix'>;

export interface WorkerStore {
  worker(queue: string, processor: Processor, opts: StoreWorkerOptions): Worker;
  deadLetters(queue: string, log: Logger): DeadLetterQueue;
  /** Whether the connection is up, as far as this process knows without asking. */
  ready(): boolean;
  /** Whether the store answers a trivial request within `deadlineMs` (a hung store keeps connections open). */
  answers(deadlineMs: number): Promise<boolean>;
  /** Calls `fn` when the store answers again after the connection was lost. */
  onReconnect(fn: () => void): void;
  close(): Promise<void>;
}

/** Resolves what `probe` resolves, or false once `deadlineMs` passed; at most one probe in flight. */
function deadlineProbe(probe: () => Promise<unknown>): (deadlineMs: number) => Promise<boolean> {
  let inFlight: Promise<boolean> | undefined;
  return async (deadlineMs) => {
    inFlight ??= probe()
      .then(
        () => true,
        () => false,
      )
      .finally(() => (inFlight = undefined));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), deadlineMs)));
    try {
      return await Promise.race([inFlight, late]);
    } finally {
      clearTimeout(timer);
    }
  };
}

export interface RedisStoreOptions {
  redisUrl: string;
  /** Redis Cluster seed nodes; the prefix must then carry a hash tag such as `{bull}`. */
  clusterNodes?: readonly string[];
  prefix: string;
  /** --own-prefix: dead-letter markers live under it. */
  ownPrefix: string;
  /** The connection's name (CLIENT SETNAME). */
  name: string;
  log: Logger;
}

/** BullMQ on Redis: one connection for the Worker, its blocking duplicate and the dead letters. */
export class RedisWorkerStore implements WorkerStore {
  private readonly connection: RedisClient;
  readonly answers: (deadlineMs: number) => Promise<boolean>;

  constructor(private readonly opts: RedisStoreOptions) {
    if (opts.clusterNodes?.length) assertClusterPrefix(opts.prefix);
    // BullMQ runs its Queue, Worker and the Worker's blocking duplicate on this connection; on a Cluster it needs
    // maxRetriesPerRequest null in the node options and the offline queue on, which createRedis sets for null.
    this.connection = createRedis({ url: opts.redisUrl, clusterNodes: opts.clusterNodes, name: opts.name, maxRetriesPerRequest: null, log: opts.log });
    // A hung Redis (frozen, a stalled link) keeps the connection 'ready' while no command gets an answer.
    this.answers = deadlineProbe(() => this.connection.ping());
  }

  worker(queue: string, processor: Processor, opts: StoreWorkerOptions): Worker {
    return new Worker(queue, processor, { ...opts, connection: this.connection, prefix: this.opts.prefix });
  }

  deadLetters(queue: string, log: Logger): DeadLetterQueue {
    return new DeadLetters({ connection: this.connection, prefix: this.opts.prefix, ownPrefix: this.opts.ownPrefix, queue, log });
  }

  ready(): boolean {
    return this.connection.status === 'ready';
  }

  onReconnect(fn: () => void): void {
    let lost = false;
    this.connection.on('close', () => (lost = true));
    this.connection.on('ready', () => {
      if (!lost) return;
      lost = false;
      fn();
    });
  }

  async close(): Promise<void> {
    this.connection.disconnect();
  }
}

/**
 * BullMQ on PostgreSQL: BullMQ's Worker builds its own pool and LISTEN connection (named `<queue>:w:<name>`, how the
 * sidecar counts workers); the probe runs on a one-connection pool of queuelens's own.
 */
export class PostgresWorkerStore implements WorkerStore {
  private readonly probe: pg.Pool;
  private up = true;
  private lost = false;
  private retry?: NodeJS.Timeout;
  private closed = false;
  private readonly reconnected: Array<() => void> = [];
  readonly answers: (deadlineMs: number) => Promise<boolean>;

  constructor(private readonly target: PostgresTarget) {
    this.probe = createPgPool(target, 'queuelens worker-probe', 1);
    const select = deadlineProbe(() => this.probe.query('SELECT 1'));
    this.answers = async (deadlineMs) => this.note(await select(deadlineMs));
  }

  /**
   * Records what a probe found. Once the database was lost it is asked again every second until it answers (nothing
   * else would ask without a /readyz prober), so "reachable again" is noticed within about a second, as ioredis's
   * 'ready' is on Redis.
   */
  private note(up: boolean): boolean {
    if (this.closed) return up;
    if (!up) {
      this.lost = true;
      this.retry ??= setInterval(() => void this.answers(2_000), 1_000).unref();
    } else if (this.lost) {
      this.lost = false;
      clearInterval(this.retry);
      this.retry = undefined;
      for (const fn of this.reconnected) fn();
    }
    this.up = up;
    return up;
  }

  worker(queue: string, processor: Processor, opts: StoreWorkerOptions): Worker {
    const w = postgresWorker(this.target, queue, processor, opts);
    // A BullMQ error on PostgreSQL is most often the connection: readiness asks the database before saying so again.
    w.on('error', () => void this.answers(5_000));
    return w;
  }

  deadLetters(queue: string, log: Logger): DeadLetterQueue {
    return new PostgresDeadLetters({ target: this.target, queue, log });
  }

  ready(): boolean {
    return this.up;
  }

  onReconnect(fn: () => void): void {
    this.reconnected.push(fn);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.retry);
    this.retry = undefined;
    this.reconnected.length = 0;
    await this.probe.end().catch(() => undefined);
  }
}
