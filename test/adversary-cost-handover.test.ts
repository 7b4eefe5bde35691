// Adversarial: the leader SIGKILLed while its commits are being paced. A stream retaining well over 200 entries
// (deferral's floor) with traffic on it: the leader reads ahead of what it committed for up to a second; killed
// then, the standby must re-read from the committed cursor and count every entry once. Ground truth: the fault
// workload's jobs (each ended exactly once) and Redis's entries-added.
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { SCRIPT_FIELDS } from '../src/events/accounting.js';
import { ownKeys } from '../src/redis/keys.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { EXPORT, FaultWorkload } from './helpers/fault-workload.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { caughtUp, entriesAdded, metric, startSidecarProcess, type SidecarProcess } from './helpers/sidecar-process.js';

let redis: TestRedis | undefined;
let work: FaultWorkload | undefined;
let raw: Redis | undefined;
let bull: BullFixtures | undefined;
const sidecars: SidecarProcess[] = [];

afterEach(async () => {
  await Promise.all(sidecars.splice(0).map((s) => s.stop()));
  await work?.close();
  await bull?.close();
  bull = undefined;
  work = undefined;
  raw?.disconnect();
  await redis?.stop();
});

const isLeader = async (s: SidecarProcess) => (await s.metrics().catch(() => undefined))?.get('bullmq_exporter_leader') === 1;

/**
 * Waits until the committed cursor is behind the stream's last entry by more than one commit batch would leave
 * (the leader's /metrics renders what was committed, so what it read past that cannot be seen from outside):
 * killed now, the next leader must read again from that cursor.
 */
async function ahead(): Promise<void> {
  await waitFor(
    'the committed cursor behind the stream',
    async () => {
      const cursor = await raw!.hget(ownKeys.eventsQueue('ql', EXPORT), SCRIPT_FIELDS.cursor);
      const behind = cursor ? (await raw!.xrange('bull:export:events', `(${cursor}`, '+', 'COUNT', 5)).length : 0;
      return behind >= 5;
    },
    30_000,
    5,
  );
}

describe('adversary: leader killed with a deferred commit', () => {
  it('a stream retaining 1,500+ entries under traffic: SIGKILL the leader twice, totals exact, nothing counted twice', async () => {
    redis = await startTestRedis();
    raw = redis.client();
    const start = async () => {
      const s = await startSidecarProcess({ redisUrl: redis!.url, ownPrefix: 'ql', queues: EXPORT.name, leaseSeconds: 1 });
      sidecars.push(s);
      return s;
    };
    const a = await start();
    await waitFor('a leads', () => isLeader(a));
    // Entries no job stands for (an event name BullMQ never writes), read after the reader followed the queue:
    // they count as read, and keep the stream long enough for commits to be deferred.
    const pipe = raw.pipeline();
    for (let i = 0; i < 1500; i++) pipe.xadd('bull:export:events', '*', 'event', 'adversary-noise', 'i', String(i));
    await pipe.exec();
    await caughtUp(a, raw, EXPORT);
    const b = await start();
    work = new FaultWorkload(redis);
    work.startWorker();
    work.produce();
    await waitFor('jobs flowing', async () => (await raw!.zcard('bull:export:completed')) > 20, 30_000);
    await ahead();
    a.cli.proc.kill('SIGKILL');
    await waitFor('b leads', () => isLeader(b), 30_000);
    const c = await start();
    const at = await raw.zcard('bull:export:completed');
    await waitFor('more jobs flowing', async () => (await raw!.zcard('bull:export:completed')) > at + 20, 30_000);
    await ahead();
    b.cli.proc.kill('SIGKILL');
    await waitFor('c leads', () => isLeader(c), 30_000);
    await work.stopProduce();
    await work.settle();
    const truth = await work.verifyExactlyOnce();
    const m = await caughtUp(c, raw, EXPORT);
    const { lost } = await work.verifyTotals(m, truth);
    expect(lost).toBe(0);
    expect(metric(m, 'bullmq_exporter_events_read_total', EXPORT)).toBe(await entriesAdded(raw, EXPORT));
  }, 180_000);
});

describe('adversary: leader killed over a small maxLenEvents', () => {
  // A stream capped near 300 entries (deferral needs 200 retained) with traffic that outruns it while no leader
  // reads: the standby re-reads from the committed cursor, counts what was trimmed as lost, and counts nothing twice.
  it('SIGKILL of the leader with its cursor behind, stream capped at 300: read + lost = entries-added, no job counted twice', async () => {
    redis = await startTestRedis({ args: ['--stream-node-max-entries', '10'] });
    raw = redis.client();
    bull = new BullFixtures(redis);
    const q = { prefix: 'bull', name: 'capped' };
    const start = async () => {
      const s = await startSidecarProcess({ redisUrl: redis!.url, ownPrefix: 'ql', queues: q.name, leaseSeconds: 1 });
      sidecars.push(s);
      return s;
    };
    const a = await start();
    await waitFor('a leads', () => isLeader(a));
    const b = await start();
    const producer = bull.queue(q.name, { streams: { events: { maxLen: 300 } } });
    let completed = 0;
    bull.worker(q.name, async () => 'ok', { concurrency: 10 }).on('completed', () => (completed += 1));
    let jobs = 0;
    let producing = true;
    const produce = (async () => {
      while (producing) {
        await producer.addBulk(Array.from({ length: 20 }, (_, i) => ({ name: 'j', data: { i } })));
        jobs += 20;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await waitFor('the stream full', async () => (await raw!.xlen('bull:capped:events')) >= 250, 30_000);
    await waitFor(
      'the committed cursor behind the stream',
      async () => {
        const cursor = await raw!.hget(ownKeys.eventsQueue('ql', q), SCRIPT_FIELDS.cursor);
        return cursor !== null && (await raw!.xrange('bull:capped:events', `(${cursor}`, '+', 'COUNT', 5)).length >= 5;
      },
      30_000,
      5,
    );
    a.cli.proc.kill('SIGKILL');
    await waitFor('b leads', () => isLeader(b), 30_000);
    const at = completed;
    await waitFor('more jobs done under b', () => completed > at + 200, 60_000);
    producing = false;
    await produce;
    await waitFor('every job done', () => completed === jobs, 60_000);
    const m = await caughtUp(b, raw, q, 60_000);
    const lost = metric(m, 'bullmq_exporter_events_lost_total', q);
    expect(metric(m, 'bullmq_exporter_events_read_total', q) + lost).toBe(await entriesAdded(raw, q));
    const added = metric(m, 'bullmq_jobs_added_total', q);
    const done = metric(m, 'bullmq_jobs_completed_total', q);
    if (lost === 0) {
      expect(added).toBe(jobs);
      expect(done).toBe(jobs);
    } else {
      expect(added).toBeLessThanOrEqual(jobs);
      expect(done).toBeLessThanOrEqual(jobs);
      expect(added).toBeGreaterThanOrEqual(jobs - lost);
      expect(done).toBeGreaterThanOrEqual(jobs - lost);
    }
  }, 180_000);
});
