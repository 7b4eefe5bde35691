// The sidecar against a real 3-master Redis Cluster with queues spread over every master.
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '../src/redis/slots.js';
import { seriesKey } from './helpers/prom-text.js';
import { startTestCluster, type TestCluster } from './helpers/redis-cluster.js';
import { testSidecar } from './helpers/sidecar.js';

let cluster: TestCluster;
const queues: Queue[] = [];
const workers: Worker[] = [];
// Per-queue hash tags: each queue's keys share a slot, and the queues land on different masters.
const NAMES = Array.from({ length: 9 }, (_, i) => `{q${i}}`);

beforeAll(async () => {
  cluster = await startTestCluster(3);
  for (const [i, name] of NAMES.entries()) {
    const q = new Queue(name, { connection: cluster.client() });
    queues.push(q);
    for (let j = 0; j <= i; j += 1) await q.add('w', { j });
    await q.add('d', {}, { delay: 3_600_000 });
  }
  const w = new Worker(NAMES[0]!, async () => new Promise(() => undefined), { connection: cluster.client(), concurrency: 1 });
  w.on('error', () => undefined);
  workers.push(w);
  const first = queues[0]!;
  const deadline = Date.now() + 10_000;
  while ((await first.getJobCounts('active')).active !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(workers.map((w) => w.close(true)));
  await Promise.allSettled(queues.map((q) => q.close()));
  await cluster?.stop();
});

describe('Redis Cluster', () => {
  it('spreads the test queues over every master', async () => {
    const c = cluster.client();
    const owners = new Set<string>();
    for (const name of NAMES) {
      const slot = keySlot(`bull:${name}:wait`);
      const shards = (await c.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
      const owner = shards.find(([lo, hi]) => slot >= lo && slot <= hi)!;
      owners.add(String(owner[2][1]));
    }
    expect(owners.size).toBe(3);
  });

  it('skips, with a warning naming the fix, a queue whose keys span several slots', async () => {
    const c = cluster.client();
    await c.hset('bull:untagged:meta', 'opts.maxLenEvents', '10000');
    const { Writable } = await import('node:stream');
    const { createLogger } = await import('../src/log/logger.js');
    const { createSidecar } = await import('../src/sidecar/create-sidecar.js');
    const { resolveSidecarConfig } = await import('../src/config/sidecar-config.js');
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', destination: new Writable({ write: (ch, _e, cb) => (lines.push(String(ch)), cb()) }) });
    const s = await createSidecar(
      resolveSidecarConfig({
        redisClusterNodes: cluster.nodes.join(','),
        collectInterval: '60',
        discoveryInterval: '60',
        prefixes: 'bull',
        maxQueues: '100',
        logLevel: 'warn',
        redisUrl: 'redis://127.0.0.1:6379',
        port: '9487',
        host: '127.0.0.1',
      }),
      log,
    );
    await s.refresh();
    expect(s.discovery.queues().map((q) => q.name)).not.toContain('untagged');
    expect(lines.join('')).toMatch(/untagged.*hash-tag prefix such as \{bull\}/);
    await s.close();
    await c.del('bull:untagged:meta');
  });

  it('discovers every queue on every master and reads each queue exactly', async () => {
    const s = await testSidecar('redis://127.0.0.1:6379', { redisClusterNodes: cluster.nodes.join(',') });
    await s.refresh();
    expect(
      s.discovery
        .queues()
        .map((q) => q.name)
        .sort(),
    ).toEqual([...NAMES].sort());
    const m = await s.scrape();
    expect(s.snapshot()?.error).toBeUndefined();
    expect(m.get('bullmq_exporter_up')).toBe(1);
    for (const [i, name] of NAMES.entries()) {
      const l = { prefix: 'bull', queue: name };
      const counts = await queues[i]!.getJobCounts('waiting', 'active', 'delayed');
      expect(m.get(seriesKey('bullmq_queue_jobs', { ...l, state: 'waiting' })), name).toBe(counts.waiting);
      expect(m.get(seriesKey('bullmq_queue_jobs', { ...l, state: 'active' })), name).toBe(counts.active);
      expect(m.get(seriesKey('bullmq_queue_jobs', { ...l, state: 'delayed' })), name).toBe(1);
      expect(counts.waiting! + counts.active!).toBe(i + 1);
    }
    expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: '{q0}', state: 'active' }))).toBe(1);
    expect(m.get(seriesKey('bullmq_queue_workers', { prefix: 'bull', queue: '{q0}' }))).toBe(1);
    expect(m.get(seriesKey('bullmq_queue_workers', { prefix: 'bull', queue: '{q1}' }))).toBe(0);
    await s.close();
  });
});
