// Worker faults under a real workload: a worker process SIGKILLed while it holds jobs (they are reclaimed
// and end once; a replacement's start-up sweep dead-letters what it failed but had not copied), and a worker SIGTERMed during a long export (it finishes within its deadline, or another
// worker redoes it; the file under the final name is always whole and matches the checksum in the result).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { ExportResult } from '../src/workers/export-processor.js';
import { waitFor } from './helpers/bullmq.js';
import { EXPORT, FaultWorkload } from './helpers/fault-workload.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { caughtUp, metric, startSidecarProcess, type SidecarProcess } from './helpers/sidecar-process.js';

let redis: TestRedis | undefined;
let work: FaultWorkload | undefined;
let sidecar: SidecarProcess | undefined;
let queue: Queue | undefined;

afterEach(async () => {
  await sidecar?.stop();
  await queue?.close();
  await work?.close();
  await redis?.stop();
});

async function setUp(): Promise<{ raw: Redis; work: FaultWorkload }> {
  redis = await startTestRedis();
  const raw = redis.client();
  work = new FaultWorkload(redis);
  queue = new Queue(EXPORT.name, { connection: { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null }, skipMetasUpdate: true });
  return { raw, work };
}

/** Rows that take this machine a few seconds to write, so a signal lands mid-export. */
const LONG_ROWS = 700_000;

describe('worker faults', () => {
  it('a worker SIGKILLed while it holds jobs: they are reclaimed and every job ends once', async () => {
    const { raw, work } = await setUp();
    sidecar = await startSidecarProcess({ redisUrl: redis!.url, ownPrefix: 'ql', queues: EXPORT.name });
    await waitFor('reader installed', async () => (await sidecar!.metrics()).get('bullmq_exporter_leader') === 1);
    const victim = work.startWorker();
    work.startWorker();
    // Slow jobs, so the victim surely holds several when it dies.
    await work.enqueue(16, 100_000);
    // BullMQ records the worker (named host-pid) that took each job in the job hash's `pb` field.
    const held = async () => {
      const active = await raw.lrange('bull:export:active', 0, -1);
      const by = await Promise.all(active.map((id) => raw.hget(`bull:export:${id}`, 'pb')));
      return by.filter((pb) => pb?.endsWith(`-${victim.proc.pid}`)).length;
    };
    await waitFor('the victim holding jobs', async () => (await held()) >= 2, 15_000, 20);
    victim.proc.kill('SIGKILL');
    // As a supervisor would: a replacement starts, and its start-up sweep dead-letters what the victim had
    // failed but not yet copied (a crash between the two is the gap the sweep exists for).
    await victim.exited;
    work.startWorker();
    await work.enqueue(60);
    await work.settle(40_000);
    const truth = await work.verifyExactlyOnce();
    const m = await caughtUp(sidecar, raw, EXPORT);
    await work.verifyTotals(m, truth);
    // The jobs it held were taken back by the stalled check, and the sidecar saw each as a stall.
    expect(metric(m, 'bullmq_jobs_stalled_total', EXPORT)).toBeGreaterThanOrEqual(1);
  }, 55_000);

  it('SIGTERM during a long export: finishes within the deadline, or is redone by another worker; never a partial file', async () => {
    const { work } = await setUp();
    const watch = (file: string) => {
      // Whenever the final name exists it must already hold the whole file.
      const sizes: number[] = [];
      const t = setInterval(() => existsSync(file) && sizes.push(readFileSync(file).length), 20);
      return { sizes, stop: () => clearInterval(t) };
    };
    const check = async (jobId: string) => {
      const job = await queue!.getJob(jobId);
      const result = job?.returnvalue as ExportResult;
      const body = readFileSync(join(work.dir, result.file));
      expect(createHash('sha256').update(body).digest('hex')).toBe(result.sha256);
      expect(body.toString().trimEnd().split('\n')).toHaveLength(LONG_ROWS);
      return { result, bytes: body.length };
    };
    const started = async (jobId: string) => waitFor('export under way', async () => Number((await queue!.getJob(jobId))?.progress) >= 5, 20_000, 20);

    // 1. A generous deadline: the worker finishes the export, then exits 0.
    const patient = work.startWorker({ shutdownTimeout: 60 });
    const a = await work.producerExport('fileA.ndjson', LONG_ROWS);
    const watchA = watch(join(work.dir, 'fileA.ndjson'));
    await started(a);
    patient.proc.kill('SIGTERM');
    expect((await patient.exited).code).toBe(0);
    watchA.stop();
    expect(await (await queue!.getJob(a))?.getState()).toBe('completed');
    const { bytes: bytesA } = await check(a);
    expect(watchA.sizes.every((s) => s === bytesA)).toBe(true);

    // 2. A deadline too short: the process exits mid-export, the job's lock lapses, another worker redoes it.
    const hasty = work.startWorker({ shutdownTimeout: 0.5 });
    const b = await work.producerExport('fileB.ndjson', LONG_ROWS);
    const watchB = watch(join(work.dir, 'fileB.ndjson'));
    await started(b);
    hasty.proc.kill('SIGTERM');
    expect((await hasty.exited).code).toBe(1);
    expect(existsSync(join(work.dir, 'fileB.ndjson'))).toBe(false);
    work.startWorker();
    await waitFor('the export redone', async () => (await (await queue!.getJob(b))?.getState()) === 'completed', 40_000, 100);
    watchB.stop();
    const { bytes: bytesB } = await check(b);
    expect(bytesB).toBe(bytesA);
    expect(watchB.sizes.every((s) => s === bytesB)).toBe(true);
    // Only the dot-prefixed temp file of the interrupted attempt may be left beside the finished ones.
    expect(
      readdirSync(work.dir)
        .filter((f) => !f.startsWith('.'))
        .sort(),
    ).toEqual(['fileA.ndjson', 'fileB.ndjson']);
    const job = await queue!.getJob(b);
    expect(job?.attemptsMade).toBeLessThanOrEqual(1);
  }, 58_000);
});
