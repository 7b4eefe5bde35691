// Ground truth for the fault suite: real `queuelens worker export` processes, export jobs enqueued through
// the Producer with idempotency keys (a retried add after a Redis fault is a no-op, never a second job), one
// in five built to fail for good (unknown source: dead-lettered at once). settle() waits until every job has
// ended; verify() checks that each ended exactly once and that a sidecar's totals equal what Redis holds.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { Producer, idempotentJobId } from '../../src/jobs/producer.js';
import { queueKey } from '../../src/redis/keys.js';
import { type QueueRef } from '../../src/domain/queue-ref.js';
import type { DeadLetterRecord } from '../../src/dead-letters/dead-letters.js';
import { waitFor } from './bullmq.js';
import { spawnCli, type CliProcess } from './cli.js';
import type { Series } from './prom-text.js';
import type { TestRedis } from './redis-server.js';
import { entriesAdded, metric } from './sidecar-process.js';

export const EXPORT: QueueRef = { prefix: 'bull', name: 'export' };

export interface WorkerProcessOptions {
  shutdownTimeout?: number;
  lockDuration?: number;
  redisUrl?: string;
}

export class FaultWorkload {
  readonly dir = mkdtempSync(join(tmpdir(), 'queuelens-faults-'));
  readonly ids: string[] = [];
  readonly workers: CliProcess[] = [];
  private readonly producer: Producer;
  private readonly raw: Redis;
  private producing?: Promise<void>;
  private stopProducing = false;

  constructor(private readonly redis: TestRedis) {
    this.producer = new Producer({ redisUrl: redis.url, prefix: EXPORT.prefix });
    this.raw = redis.client();
  }

  /** A real worker process on the export queue; a crashed one's jobs are reclaimed within ~2 s. */
  startWorker(o: WorkerProcessOptions = {}): CliProcess {
    const args = [
      'worker',
      'export',
      '--export-dir',
      this.dir,
      '--export-concurrency',
      '4',
      '--lock-duration',
      String(o.lockDuration ?? 1),
      '--stalled-interval',
      '0.5',
    ];
    const w = spawnCli([...args, '--shutdown-timeout', String(o.shutdownTimeout ?? 5)], { REDIS_URL: o.redisUrl ?? this.redis.url, LOG_LEVEL: 'warn' });
    this.workers.push(w);
    return w;
  }

  /** Enqueues n export jobs; job i fails for good when i % 5 == 0. */
  async enqueue(n: number, rows = 20): Promise<void> {
    const start = this.ids.length;
    const batch = Array.from({ length: n }, (_, k) => start + k);
    this.ids.push(...batch.map((i) => idempotentJobId(`fault-${i}`)));
    await Promise.all(
      batch.map((i) =>
        this.producer.enqueueExport({ format: 'ndjson', rows, source: i % 5 === 0 ? 'missing' : 'synthetic' }, { idempotencyKey: `fault-${i}` }),
      ),
    );
  }

  /** One export job writing `fileName`; returns its id. */
  async producerExport(fileName: string, rows: number): Promise<string> {
    const job = await this.producer.enqueueExport({ format: 'ndjson', rows, source: 'synthetic', fileName });
    return String(job.id);
  }

  /** Keeps enqueueing `perTick` jobs every 100 ms until stopped; adds wait out Redis faults. */
  produce(perTick = 5): void {
    this.stopProducing = false;
    this.producing = (async () => {
      while (!this.stopProducing) {
        await this.enqueue(perTick);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
  }

  async stopProduce(): Promise<void> {
    this.stopProducing = true;
    await this.producing;
  }

  /** Waits until every enqueued job sits in `completed` or `failed`. */
  async settle(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `all ${this.ids.length} jobs to end`,
      async () => (await this.raw.zcard(queueKey(EXPORT, 'completed'))) + (await this.raw.zcard(queueKey(EXPORT, 'failed'))) === this.ids.length,
      timeoutMs,
      100,
    );
  }

  /**
   * Every job ended exactly once: in `completed` or in `failed` (never both, never neither), every failed
   * job dead-lettered exactly once, nothing else in the DLQ. Returns the counts Redis holds.
   */
  async verifyExactlyOnce(): Promise<{ completed: number; failed: number }> {
    const completed = new Set(await this.raw.zrange(queueKey(EXPORT, 'completed'), 0, '-1'));
    const failed = new Set(await this.raw.zrange(queueKey(EXPORT, 'failed'), 0, '-1'));
    for (const id of this.ids) expect(Number(completed.has(id)) + Number(failed.has(id)), `job ${id}`).toBe(1);
    expect(completed.size + failed.size).toBe(this.ids.length);
    const dlq = new Queue(`${EXPORT.name}-dlq`, {
      connection: { host: '127.0.0.1', port: this.redis.port, maxRetriesPerRequest: null },
      skipMetasUpdate: true,
    });
    try {
      await waitFor('every failed job dead-lettered', async () => (await dlq.getWaitingCount()) >= failed.size, 15_000, 100).catch(async (err) => {
        const dead = new Set(((await dlq.getJobs(['wait'])) as Array<Job<DeadLetterRecord>>).map((j) => j.data.source.jobId));
        const missing = [...failed].filter((id) => !dead.has(id));
        const reasons = await Promise.all(missing.map((id) => this.raw.hget(`${EXPORT.prefix}:${EXPORT.name}:${id}`, 'failedReason')));
        throw new Error(`${(err as Error).message}; not dead-lettered: ${JSON.stringify(reasons)}`);
      });
      const dead = (await dlq.getJobs(['wait'])) as Array<Job<DeadLetterRecord>>;
      expect(dead.map((j) => j.data.source.jobId).sort()).toEqual([...failed].sort());
    } finally {
      await dlq.close();
    }
    return { completed: completed.size, failed: failed.size };
  }

  /**
   * The sidecar's totals against Redis's ground truth. With nothing lost they are equal; when entries were
   * lost, read + lost still equals what the stream ever held, and each total is short by at most `lost`.
   */
  async verifyTotals(m: Series, truth: { completed: number; failed: number }): Promise<{ lost: number }> {
    const lost = metric(m, 'bullmq_exporter_events_lost_total', EXPORT);
    expect(metric(m, 'bullmq_exporter_events_read_total', EXPORT) + lost).toBe(await entriesAdded(this.raw, EXPORT));
    const exported = {
      added: metric(m, 'bullmq_jobs_added_total', EXPORT),
      completed: metric(m, 'bullmq_jobs_completed_total', EXPORT),
      failed: metric(m, 'bullmq_jobs_failed_total', EXPORT),
    };
    const expected = { added: this.ids.length, ...truth };
    if (lost === 0) expect(exported).toEqual(expected);
    else {
      for (const k of ['added', 'completed', 'failed'] as const) {
        expect(exported[k]).toBeLessThanOrEqual(expected[k]);
        expect(exported[k]).toBeGreaterThanOrEqual(expected[k] - lost);
      }
    }
    return { lost };
  }

  async close(): Promise<void> {
    this.stopProducing = true;
    await this.producing?.catch(() => undefined);
    for (const w of this.workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    await Promise.all(this.workers.map((w) => w.exited));
    await this.producer.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
