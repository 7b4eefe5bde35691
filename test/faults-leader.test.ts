// Sidecar leader faults under a real workload, two sidecar processes sharing one own prefix: the leader
// SIGKILLed; the leader SIGSTOPped past its lease (it must not write after SIGCONT: the lease token fences
// every write); and the leader's link to Redis stalled past its lease through a TCP proxy. In each case the
// standby takes over and the totals equal Redis's ground truth, with nothing counted twice.
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { EXPORT, FaultWorkload } from './helpers/fault-workload.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { caughtUp, startSidecarProcess, type SidecarProcess } from './helpers/sidecar-process.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

const LEASE_S = 1;
let redis: TestRedis | undefined;
let work: FaultWorkload | undefined;
let proxy: TcpProxy | undefined;
const sidecars: SidecarProcess[] = [];

afterEach(async () => {
  await Promise.all(sidecars.splice(0).map((s) => s.stop()));
  await proxy?.stop();
  await work?.close();
  await redis?.stop();
});

const isLeader = async (s: SidecarProcess) => (await s.metrics().catch(() => undefined))?.get('bullmq_exporter_leader') === 1;

/** Sidecar a (through `aUrl`) becomes leader first, then b joins as standby; workers and a producer run. */
async function setUp(aUrl?: (r: TestRedis) => Promise<string>): Promise<{ raw: Redis; work: FaultWorkload; a: SidecarProcess; b: SidecarProcess }> {
  redis = await startTestRedis();
  const raw = redis.client();
  const start = async (url: string) => {
    const s = await startSidecarProcess({ redisUrl: url, ownPrefix: 'ql', queues: EXPORT.name, leaseSeconds: LEASE_S });
    sidecars.push(s);
    return s;
  };
  const a = await start(aUrl ? await aUrl(redis) : redis.url);
  await waitFor('a leads', () => isLeader(a));
  const b = await start(redis.url);
  work = new FaultWorkload(redis);
  work.startWorker();
  work.produce();
  await waitFor('jobs flowing', async () => (await raw.zcard('bull:export:completed')) > 20, 15_000);
  return { raw, work, a, b };
}

/** Stops the producer, waits for every job, and checks outcomes and the given sidecar's totals. */
async function finish(raw: Redis, work: FaultWorkload, s: SidecarProcess): Promise<void> {
  await work.stopProduce();
  await work.settle();
  const truth = await work.verifyExactlyOnce();
  const { lost } = await work.verifyTotals(await caughtUp(s, raw, EXPORT), truth);
  expect(lost).toBe(0);
}

describe('sidecar leader faults', () => {
  it('leader SIGKILLed: the standby takes over, totals exact', async () => {
    const { raw, work, a, b } = await setUp();
    a.cli.proc.kill('SIGKILL');
    await waitFor('b leads', () => isLeader(b), 30_000);
    await finish(raw, work, b);
  }, 120_000);

  it('leader SIGSTOPped past its lease: the standby leads; after SIGCONT the old leader writes nothing', async () => {
    const { raw, work, a, b } = await setUp();
    a.cli.proc.kill('SIGSTOP');
    await waitFor('b leads', () => isLeader(b), 30_000);
    // b commits for a while; then a wakes up with whatever it had read before it froze.
    await new Promise((r) => setTimeout(r, 1000));
    a.cli.proc.kill('SIGCONT');
    await waitFor('a knows it no longer leads', async () => (await a.metrics()).get('bullmq_exporter_leader') === 0, 30_000);
    // A batch a read before it froze meets a refusing script (stale token): if it got through, the totals
    // below would count those entries twice.
    await finish(raw, work, b);
    // Both replicas render the same accounting from Redis.
    await finish(raw, work, a);
  }, 120_000);

  it("the leader's link to Redis stalled past its lease: the standby leads, totals exact after the link thaws", async () => {
    const { raw, work, a, b } = await setUp(async (r) => {
      proxy = await startTcpProxy(r.port);
      return `redis://127.0.0.1:${proxy.port}`;
    });
    proxy!.stall();
    await waitFor('b leads', () => isLeader(b), 30_000);
    await new Promise((r) => setTimeout(r, 2 * LEASE_S * 1000));
    proxy!.resume();
    await waitFor('a knows it no longer leads', async () => (await a.metrics()).get('bullmq_exporter_leader') === 0, 30_000);
    await finish(raw, work, b);
    await finish(raw, work, a);
  }, 120_000);
});
