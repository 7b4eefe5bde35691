// Redis faults under a real workload (worker processes, a sidecar process, a producer that keeps adding):
// Redis SIGKILLed and restarted from its append-only file, and Redis frozen (SIGSTOP) for 30 s. Every job
// ends exactly once, and the sidecar's totals equal what Redis holds, minus exactly what it counted as lost.
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { EXPORT, FaultWorkload } from './helpers/fault-workload.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { caughtUp, startSidecarProcess, type SidecarProcess } from './helpers/sidecar-process.js';

let redis: TestRedis | undefined;
let work: FaultWorkload | undefined;
let sidecar: SidecarProcess | undefined;

afterEach(async () => {
  await sidecar?.stop();
  await work?.close();
  await redis?.stop();
});

async function setUp(args: string[]): Promise<{ raw: Redis; redis: TestRedis; work: FaultWorkload; sidecar: SidecarProcess }> {
  redis = await startTestRedis({ args });
  const raw = redis.client();
  sidecar = await startSidecarProcess({ redisUrl: redis.url, ownPrefix: 'ql', queues: EXPORT.name, leaseSeconds: 2 });
  // Installed before the first job, so the sidecar counts the stream from its first entry.
  await waitFor('reader installed', async () => (await raw.exists('ql:events:meta')) === 1 || (await sidecar!.metrics()).get('bullmq_exporter_leader') === 1);
  work = new FaultWorkload(redis);
  work.startWorker();
  work.startWorker();
  return { raw, redis, work, sidecar };
}

describe('Redis faults', () => {
  it('Redis SIGKILLed mid-workload and restarted from its AOF: nothing lost, nothing twice', async () => {
    const { raw, redis, work, sidecar } = await setUp(['--appendonly', 'yes', '--appendfsync', 'always']);
    work.produce();
    await waitFor('jobs flowing', async () => (await raw.zcard('bull:export:completed')) > 20, 15_000);
    await redis.kill();
    await new Promise((r) => setTimeout(r, 1000));
    await redis.restart();
    await new Promise((r) => setTimeout(r, 1500));
    await work.stopProduce();
    await work.settle();
    const truth = await work.verifyExactlyOnce();
    expect(truth.failed).toBeGreaterThan(0);
    const m = await caughtUp(sidecar, raw, EXPORT);
    const { lost } = await work.verifyTotals(m, truth);
    // The AOF is fsynced on every write: the stream and the reader's cursor come back together.
    expect(lost).toBe(0);
    expect(sidecar.alive()).toBe(true);
  }, 50_000);

  it('Redis frozen for 30 s: everything waits, then recovers, nothing lost or counted twice', async () => {
    const { raw, work, sidecar } = await setUp([]);
    work.produce();
    await waitFor('jobs flowing', async () => (await raw.zcard('bull:export:completed')) > 20, 15_000);
    const pid = Number((await raw.info('server')).match(/process_id:(\d+)/)?.[1]);
    process.kill(pid, 'SIGSTOP');
    try {
      await new Promise((r) => setTimeout(r, 30_000));
      // The sidecar still answers /metrics, and says Redis is not.
      expect((await sidecar.metrics()).get('bullmq_exporter_up')).toBe(0);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await new Promise((r) => setTimeout(r, 1000));
    await work.stopProduce();
    await work.settle();
    const truth = await work.verifyExactlyOnce();
    const m = await caughtUp(sidecar, raw, EXPORT);
    const { lost } = await work.verifyTotals(m, truth);
    expect(lost).toBe(0);
    expect(m.get('bullmq_exporter_leader')).toBe(1);
    expect(work.workers.every((w) => w.proc.exitCode === null)).toBe(true);
  }, 58_000);
});
