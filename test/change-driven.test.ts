// Change-driven collection (collector/change-plan.ts, events/accounting-cache.ts): with the event reader on, a
// queue whose events did not move is not read again until the sweep; one whose events moved is collected at once;
// what emits no event (a lock expiring, a hand edit) is caught by the sweep; and after it every gauge equals a
// full collection's; a queue whose events keep moving is re-read about as often as anyone asks for the data, at
// any replica (collector/demand-pace.ts). Ground truth: the commands Redis ran (MONITOR on the private server), what
// the test enqueued and what Redis holds.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { BUSY_REREAD_MS, ChangePlan, collectOnChange } from '../src/collector/change-plan.js';
import type { QueueReading } from '../src/domain/backend.js';
import { QueueChanges } from '../src/domain/queue-changes.js';
import { queueId, type QueueRef } from '../src/domain/queue-ref.js';
import { readEventAccounting } from '../src/events/read-back.js';
import { ownKeys } from '../src/redis/keys.js';
import { expectKeptEqualsFull } from './helpers/kept-vs-full.js';
import { seriesKey } from './helpers/prom-text.js';
import { monitorCommands, startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let bull: BullFixtures;
const sidecars: Array<Awaited<ReturnType<typeof testSidecar>>> = [];

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
});

afterEach(async () => {
  await Promise.all(sidecars.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await bull.close();
  await redis.stop();
});

async function sidecar(prefix: string, raw: Record<string, unknown>) {
  const s = await testSidecar(redis.url, { prefixes: prefix, ownPrefix: `ql-${prefix}`, ...raw });
  sidecars.push(s);
  return s;
}

type Sidecar = Awaited<ReturnType<typeof sidecar>>;

const gauge = async (s: Sidecar, name: string, labels: Record<string, string>) => (await s.scrape()).get(seriesKey(name, labels));

/**
 * The reader follows `queue` (its accounting is rendered) and `n` collections ran since, after the period in which a
 * change of a queue read just before is deferred (BUSY_REREAD_MS; following a queue marks it changed).
 */
async function followed(s: Sidecar, prefix: string, queue: string, n = 2): Promise<void> {
  await waitFor(`${queue} followed`, async () => (await gauge(s, 'bullmq_exporter_events_lag_seconds', { prefix, queue })) !== undefined);
  await new Promise((r) => setTimeout(r, BUSY_REREAD_MS));
  const seq = s.snapshot()?.seq ?? 0;
  await waitFor(`${n} collections`, () => (s.snapshot()?.seq ?? 0) >= seq + n);
}

describe('change-driven collection', () => {
  it('does not read a queue again between sweeps while its events do not move; reads the one whose events moved', async () => {
    const p = 'cd1';
    await bull.queue('idle', { prefix: p }).add('x', {});
    const busy = bull.queue('busy', { prefix: p });
    await busy.add('x', {});
    const s = await sidecar(p, { collectInterval: '0.2', collectSweep: '3600' });
    await s.start();
    await followed(s, p, 'idle', 10);
    await followed(s, p, 'busy');

    const seen: string[][] = [];
    const monitor = await monitorCommands(redis, (args) => seen.push(args));
    const seq = s.snapshot()!.seq;
    // Collections keep running; busy's events move, idle's do not.
    for (let i = 0; i < 3; i += 1) {
      await busy.add('y', { i });
      await waitFor('a collection after the change', () => s.snapshot()!.seq > seq + 2 * (i + 1));
    }
    await waitFor('busy depth', async () => (await gauge(s, 'bullmq_queue_jobs', { prefix: p, queue: 'busy', state: 'waiting' })) === 4);
    monitor.stop();
    expect(s.snapshot()!.seq).toBeGreaterThanOrEqual(seq + 6);

    // A command on one of the queue's keys other than its events stream (the reader's) is a collection reading it.
    const reads = (queue: string) => seen.filter((args) => args.some((a) => a.startsWith(`${p}:${queue}:`) && a !== `${p}:${queue}:events`));
    const accountingReads = (queue: string) => seen.filter((args) => args[0]?.toLowerCase() === 'hgetall' && args[1] === `ql-${p}:events:q:${p}:${queue}`);
    // The control: MONITOR saw the collector read busy, and read its accounting back.
    expect(reads('busy').length).toBeGreaterThan(0);
    expect(accountingReads('busy').length).toBeGreaterThan(0);
    expect(reads('idle')).toEqual([]);
    expect(accountingReads('idle')).toEqual([]);
    // And what it kept is still exact.
    expect(await gauge(s, 'bullmq_queue_jobs', { prefix: p, queue: 'idle', state: 'waiting' })).toBe(1);
  });

  it('with events off (--no-events) reads every queue at every collection, as before', async () => {
    const p = 'cd6';
    await bull.queue('idle', { prefix: p }).add('x', {});
    const s = await sidecar(p, { events: 'false', collectInterval: '0.2' });
    await s.start();
    await waitFor('first collection', async () => (await gauge(s, 'bullmq_queue_jobs', { prefix: p, queue: 'idle', state: 'waiting' })) === 1);
    const seen: string[][] = [];
    const monitor = await monitorCommands(redis, (args) => seen.push(args));
    const seq = s.snapshot()!.seq;
    await waitFor('three collections', () => s.snapshot()!.seq >= seq + 3);
    monitor.stop();
    const reads = seen.filter((args) => args[0]?.toLowerCase() === 'evalsha_ro' && args.includes(`${p}:idle:`));
    expect(reads.length).toBeGreaterThanOrEqual(2);
  });

  it("shows a changed queue's depth and counters after its events, without waiting for an interval or the sweep", async () => {
    const p = 'cd2';
    const q = bull.queue('q', { prefix: p });
    await q.add('first', {});
    // Neither the interval nor the sweep comes round during the test: only the change can start a collection.
    const s = await sidecar(p, { collectInterval: '3600', collectSweep: '3600' });
    await s.start();
    await followed(s, p, 'q', 0);
    expect(await gauge(s, 'bullmq_queue_jobs', { prefix: p, queue: 'q', state: 'waiting' })).toBe(1);
    for (let i = 0; i < 3; i += 1) await q.add('more', { i });
    const truth = await q.getJobCounts('waiting');
    expect(truth.waiting).toBe(4);
    await waitFor('depth on /metrics', async () => (await gauge(s, 'bullmq_queue_jobs', { prefix: p, queue: 'q', state: 'waiting' })) === truth.waiting);
    await waitFor('counter on /metrics', async () => (await gauge(s, 'bullmq_jobs_added_total', { prefix: p, queue: 'q' })) === 3);
  });

  it('catches a lock that expires with no event at the sweep', async () => {
    const p = 'bull'; // the stuck worker fixture's prefix; no other test here uses it
    const q = bull.queue('locked', { prefix: p });
    await q.add('stuck', {});
    const stuck = await bull.stuckWorker('locked', 2000, { skipStalledCheck: true });
    const s = await sidecar(p, { collectInterval: '0.2', collectSweep: '2' });
    await s.start();
    await followed(s, p, 'locked');
    expect(await gauge(s, 'bullmq_queue_jobs', { prefix: p, queue: 'locked', state: 'active' })).toBe(1);
    expect(await gauge(s, 'bullmq_queue_orphaned_active_jobs', { prefix: p, queue: 'locked' })).toBeUndefined();
    const client = redis.client();
    const lastEvent = async () => (await client.xrevrange(`${p}:locked:events`, '+', '-', 'COUNT', 1))[0]?.[0];
    const before = await lastEvent();
    stuck.proc.kill('SIGKILL');
    await waitFor('lock expiry', async () => (await client.pttl(`${p}:locked:${stuck.jobId}:lock`)) === -2, 30_000);
    await waitFor('orphan on /metrics', async () => (await gauge(s, 'bullmq_queue_orphaned_active_jobs', { prefix: p, queue: 'locked' })) === 1, 30_000);
    // Nothing was written to the stream: no event told the collection.
    expect(await lastEvent()).toBe(before);
    client.disconnect();
  });

  it('sweeps a queue whose lock can expire at the sweep period, an idle one only at the idle period, and still catches the expiry', async () => {
    const p = 'bull'; // the stuck worker fixture's prefix
    const q = bull.queue('risky', { prefix: p });
    await q.add('stuck', {});
    const stuck = await bull.stuckWorker('risky', 2000, { skipStalledCheck: true });
    await bull.queue('calm', { prefix: p }).add('x', {});
    const s = await sidecar(p, { collectInterval: '0.2', collectSweep: '1', collectSweepIdle: '3600', ownPrefix: 'ql-bull-risk' });
    await s.start();
    await followed(s, p, 'risky');
    await followed(s, p, 'calm');

    // Ground truth: the collection's group script calls MONITOR sees naming each queue's key base.
    const seen: string[][] = [];
    const monitor = await monitorCommands(redis, (args) => seen.push(args));
    const sweeps = (queue: string) => seen.filter((args) => /^evalsha/i.test(args[0] ?? '') && args.includes(`${p}:${queue}:`)).length;
    // Several sweep periods: the queue at risk is read at each (its events do not move: the worker is stuck).
    await waitFor('risky swept 4 times', () => sweeps('risky') >= 4, 60_000);
    monitor.stop();
    expect(sweeps('calm')).toBe(0);

    // The worker dies: its lock expires with no event, and the sweep still finds the orphan.
    const client = redis.client();
    stuck.proc.kill('SIGKILL');
    await waitFor('lock expiry', async () => (await client.pttl(`${p}:risky:${stuck.jobId}:lock`)) === -2, 30_000);
    await waitFor('orphan on /metrics', async () => (await gauge(s, 'bullmq_queue_orphaned_active_jobs', { prefix: p, queue: 'risky' })) === 1, 30_000);
    client.disconnect();
  });

  it("equals a full collection's every gauge after the sweep, hand edits and delayed jobs falling due included", async () => {
    const p = 'cd4';
    const now = Date.now();
    const waits = bull.queue('waits', { prefix: p });
    await waits.add('old', {}, { timestamp: now - 120_000 });
    await waits.add('w', {});
    await waits.add('p', {}, { priority: 5 });
    await waits.add('overdue', {}, { timestamp: now - 60_000, delay: 1000 });
    await waits.add('later', {}, { delay: 3_600_000 });
    // Falls due during the test, with no event at that moment.
    await bull.queue('soon', { prefix: p }).add('soon', {}, { delay: 1500 });
    const paused = bull.queue('edited', { prefix: p });
    await paused.add('e', {});
    const finished = bull.queue('finished', { prefix: p });
    for (let i = 0; i < 3; i += 1) await finished.add('f', { fail: i === 2 });
    const fw = bull.worker(
      'finished',
      async (j) => {
        if (j.data.fail) throw new Error('boom');
      },
      { prefix: p },
    );
    await waitFor('finished', async () => (await finished.getJobCounts('completed', 'failed')).failed === 1);
    await fw.close();
    const busy = bull.queue('busy', { prefix: p });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    bull.worker('busy', async () => gate, { prefix: p });
    await busy.add('long', {});
    await waitFor('busy active', async () => (await busy.getJobCounts('active')).active === 1);

    // Hand edits on queues with no active job: swept at the idle period, here the same as the sweep.
    const s = await sidecar(p, { collectInterval: '0.2', collectSweep: '2', collectSweepIdle: '2' });
    await s.start();
    for (const queue of ['waits', 'soon', 'edited', 'finished', 'busy']) await followed(s, p, queue, 1);
    await waitFor('soon overdue', async () => (await gauge(s, 'bullmq_queue_delayed_overdue_jobs', { prefix: p, queue: 'soon' })) === 1, 30_000);

    // Hand edits that write no event: a job id pushed behind the others, and a pause by HSET.
    const client = redis.client();
    await client.lpush(`${p}:edited:wait`, 'by-hand');
    await client.hset(`${p}:edited:meta`, 'paused', '1');
    await waitFor('edits seen', async () => {
      const m = await s.scrape();
      return (
        m.get(seriesKey('bullmq_queue_jobs', { prefix: p, queue: 'edited', state: 'waiting' })) === 2 &&
        m.get(seriesKey('bullmq_queue_paused', { prefix: p, queue: 'edited' })) === 1
      );
    });

    const kept = s.snapshot()!;
    const full = await sidecar(p, { events: 'false', collectSweep: '0', ownPrefix: `ql-${p}-full` });
    await full.refresh();
    const a = expectKeptEqualsFull(kept, full.snapshot()!);
    expect(a.get('waits')!.oldestWaitingAgeSeconds).toBeGreaterThanOrEqual(120);
    expect(a.get('busy')!.oldestActiveAgeSeconds).toBeGreaterThan(0);
    release();
    client.disconnect();
  });

  it('a replica renders the snapshot the leader wrote, without reading the queues itself; with the leader gone it collects', async () => {
    const p = 'cd5';
    const q = bull.queue('r', { prefix: p });
    await q.add('a', {});
    await q.add('b', {});
    const leader = await sidecar(p, { collectInterval: '0.2', collectSweep: '60' });
    await leader.start();
    await followed(leader, p, 'r');
    const replica = await sidecar(p, { collectInterval: '0.2', collectSweep: '60' });
    await replica.start();
    const waiting = async (s: Sidecar) => gauge(s, 'bullmq_queue_jobs', { prefix: p, queue: 'r', state: 'waiting' });
    await waitFor('replica renders', async () => (await waiting(replica)) === 2);

    // The replica's command connection, by its address in CLIENT LIST.
    const conn = replica.backend.admin!;
    const id = String(await conn.client('ID'));
    const list = String(await conn.client('LIST'));
    const addr = /^id=(\d+) addr=(\S+)/gm;
    const replicaAddr = [...list.matchAll(addr)].find((m) => m[1] === id)?.[2];
    expect(replicaAddr).toBeDefined();

    const seen: Array<{ args: string[]; source?: string }> = [];
    const monitor = await monitorCommands(redis, (args, source) => seen.push({ args, source }));
    const seq = replica.snapshot()!.seq;
    for (let i = 0; i < 3; i += 1) await q.add('more', { i });
    const truth = (await q.getJobCounts('waiting')).waiting;
    expect(truth).toBe(5);
    await waitFor('replica shows the change', async () => (await waiting(replica)) === truth);
    await waitFor('replica collections', () => replica.snapshot()!.seq >= seq + 3);
    monitor.stop();
    const fromReplica = seen.filter((c) => c.source === replicaAddr);
    expect(fromReplica.some((c) => c.args[0]?.toLowerCase() === 'get' && c.args[1] === `ql-${p}:snapshot`)).toBe(true);
    // Its queue reads would name the queue's keys (the group script takes each queue's key base).
    expect(fromReplica.filter((c) => c.args.some((a) => a.startsWith(`${p}:r:`)))).toEqual([]);
    // And the leader did read the queue (the control).
    expect(seen.some((c) => c.source !== replicaAddr && c.args.some((a) => a === `${p}:r:`))).toBe(true);

    // The leader leaves: the replica takes the lease over and collects by itself, exact.
    await leader.close();
    await q.add('after', {});
    await waitFor('replica exact alone', async () => (await waiting(replica)) === 6);
    // Now the leader, it writes the snapshot the others render.
    const client = redis.client();
    await waitFor('new leader writes the snapshot', async () => (await client.get(`ql-${p}:snapshot`)) !== null);
    client.disconnect();
  });
});

/** The collections reading `${prefix}:busy` (its group script names the queue's key base), ms since `start`. */
async function readsOfBusy(prefix: string, start = 0): Promise<{ reads: number[]; stop(): void }> {
  const reads: number[] = [];
  const monitor = await monitorCommands(redis, (args) => {
    if (/^evalsha/i.test(args[0] ?? '') && args.includes(`${prefix}:busy:`)) reads.push(Date.now() - start);
  });
  return { reads, stop: () => monitor.stop() };
}

/** Adds a job to `q` every 100 ms until stopped; `added`: one more than the jobs it added (the test's 'first'). */
function produce(q: ReturnType<BullFixtures['queue']>): { readonly added: number; stop(): Promise<void> } {
  let added = 1;
  let producing = true;
  const done = (async () => {
    while (producing) {
      await q.add('j', { added });
      added += 1;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    get added() {
      return added;
    },
    async stop() {
      producing = false;
      await done;
    },
  };
}

/** `s` shows the busy queue as Redis holds it and as `added` says ('first' and the producer's jobs, no worker). */
async function expectBusyExact(s: Sidecar, q: ReturnType<BullFixtures['queue']>, prefix: string, added: number): Promise<void> {
  const labels = { prefix, queue: 'busy' };
  const waiting = (await q.getJobCounts('waiting')).waiting;
  expect(waiting).toBe(added);
  await waitFor('depth exact', async () => (await s.scrape()).get(seriesKey('bullmq_queue_jobs', { ...labels, state: 'waiting' })) === waiting);
  // Only the producer's were added while the reader followed the queue.
  await waitFor('added exact', async () => (await s.scrape()).get(seriesKey('bullmq_jobs_added_total', labels)) === added - 1);
}

describe('freshness paced by demand', () => {
  it("re-reads a busy queue once per --collect-busy-max while nobody asks, about every second while a replica's /metrics is polled, and stays exact", async () => {
    const p = 'dp1';
    const own = `ql-${p}`;
    const q = bull.queue('busy', { prefix: p });
    await q.add('first', {});
    const opts = { collectInterval: '1', collectSweep: '3600', collectBusyMax: '30' };
    const leader = await sidecar(p, opts);
    await leader.start();
    // Followed, without asking the leader for anything: its accounting is in Redis.
    const client = redis.client();
    await waitFor('the leader follows the queue', async () => (await readEventAccounting(client, own)).some((a) => a.queue.name === 'busy'));
    const replica = await sidecar(p, opts);
    await replica.start();

    // The leader's collections reading the queue.
    const { reads, stop } = await readsOfBusy(p);
    const redisSeconds = async () => Number((await client.time())[0]);
    const producer = produce(q);
    try {
      // Nobody asks either sidecar for 10 s of Redis's clock: at most one read in (the first change), not ten.
      const quietFrom = await redisSeconds();
      await waitFor('10 s', async () => (await redisSeconds()) - quietFrom >= 10, 60_000, 500);
      const quietReads = reads.length;
      expect(quietReads).toBeLessThanOrEqual(2);
      // Its /metrics polled (the replica's, not the leader's): the replica writes how often it is asked, the
      // leader reads it, and re-reads the busy queue about once a second again.
      const poll = setInterval(() => void replica.scrape().catch(() => undefined), 200);
      try {
        await waitFor('five more reads', () => reads.length >= quietReads + 5, 30_000);
        const demand = await client.hgetall(ownKeys.demand(own));
        expect(Object.keys(demand).length).toBeGreaterThan(0);
      } finally {
        clearInterval(poll);
      }
    } finally {
      await producer.stop();
      stop();
    }
    // Exact: the replica renders the leader's snapshot and accounting, what Redis holds and what was enqueued.
    await expectBusyExact(replica, q, p, producer.added);
    client.disconnect();
  });
});

describe('freshness timed before predicted scrapes', () => {
  it('brings a busy queue up to date once per scrape gap, shortly before each scrape, and stays exact', async () => {
    const p = 'dp2';
    const q = bull.queue('busy', { prefix: p });
    await q.add('first', {});
    const s = await sidecar(p, { collectInterval: '1', collectSweep: '3600' });
    await s.start();
    await followed(s, p, 'busy');
    const start = Date.now();
    const { reads, stop } = await readsOfBusy(p, start);
    const producer = produce(q);
    // Scraped every 5 s, as Prometheus would (longer than twice LEAD_MS: the looks recur).
    const GAP = 5000;
    const scrapes: number[] = [];
    try {
      for (let i = 0; i < 8; i += 1) {
        const at = start + i * GAP;
        await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
        scrapes.push(Date.now() - start);
        await s.scrape();
      }
    } finally {
      await producer.stop();
      stop();
    }
    // From the fourth scrape on (three looks make a period): each gap holds a read, and at most one per gap (plus
    // one of slack for a scrape late on a busy machine); half the gap (2.5 s) read it twice per gap.
    const from = scrapes[3] as number;
    const to = scrapes[7] as number;
    const inWindow = reads.filter((r) => r > from && r <= to);
    for (let i = 4; i <= 7; i += 1) expect(reads.some((r) => r > (scrapes[i - 1] as number) && r <= (scrapes[i] as number))).toBe(true);
    expect(inWindow.length).toBeLessThanOrEqual(5);
    // Exact: what Redis holds and what was enqueued.
    await expectBusyExact(s, q, p, producer.added);
  });
});

describe('ChangePlan pacing of busy queues', () => {
  const reading: QueueReading = {
    metaExists: 1,
    paused: 0,
    waiting: 1,
    active: 0,
    prioritized: 0,
    delayed: 0,
    waitingChildren: 0,
    completed: 0,
    failed: 0,
    delayedOverdue: 0,
    headEligibleMs: 0,
    oldestActiveStartMs: -1,
    orphanedActive: 0,
    activeLocksChecked: 0,
    limiterPttl: -2,
    limiterCount: 0,
    globalRateMax: -1,
    lockOwners: 0,
    nextDueMs: -1,
    lockExpiresMs: -1,
  };

  it('reads a queue whose events keep moving at most once per busyRereadMs, and what moved meanwhile right after it', () => {
    let now = 1_000_000;
    const changes = new QueueChanges();
    const plan = new ChangePlan({ changes, sweepMs: 3_600_000, busyRereadMs: 1000, now: () => now });
    const busy: QueueRef = { prefix: 'p', name: 'busy' };
    const quiet: QueueRef = { prefix: 'p', name: 'quiet' };
    const refs = [busy, quiet];
    let marks = 0;
    changes.onStateChange(() => (marks += 1));
    changes.follow(refs);
    // What a pass reads, and the looks it keeps (as the collector does).
    const pass = (): string[] => {
      const { read } = plan.plan(refs);
      for (const ref of read) plan.keep({ ref, nowMs: now, reading });
      return read.map((r) => r.name);
    };
    expect(pass()).toEqual(['busy', 'quiet']);
    // Prompt collections 500 ms apart while busy's events keep moving: read at 0, 1000, 2000, not at every pass.
    const readsOfBusy: number[] = [];
    for (let t = 500; t <= 2500; t += 500) {
      now = 1_000_000 + t;
      changes.mark([busy], ['state']);
      if (pass().includes('busy')) readsOfBusy.push(t);
    }
    expect(readsOfBusy).toEqual([1000, 2000]);
    // The change deferred at 2500 stays marked, so a pass reads it once the period is up with no new event, and
    // each deferral marks it again, which is what starts the next prompt collection (collectOnChange listens).
    now = 1_000_000 + 2600;
    const marksBefore = marks;
    expect(pass()).toEqual([]);
    expect(plan.lastCounts.deferred).toBe(1);
    expect(marks).toBe(marksBefore + 1);
    now = 1_000_000 + 3000;
    expect(pass()).toEqual(['busy']);
    expect(pass()).toEqual([]);
    // A queue quiet for longer than the period is read at the first pass after its change.
    changes.mark([quiet], ['state']);
    expect(pass()).toEqual(['quiet']);
    expect(changes.take('state')).toEqual(new Set());
    expect(plan.lastCounts.deferred).toBe(0);
    expect(queueId(busy)).not.toBe(queueId(quiet));
  });
});

describe('ChangePlan sweep of busy queues (sweepLikeAnyRead)', () => {
  const atRisk = { metaExists: 1, waiting: 0, active: 1, limiterPttl: -2, nextDueMs: -1, lockExpiresMs: 0, orphanedActive: 0 } as QueueReading;

  /**
   * 60 queues, one busy with an active job whose events are read every 15 s, passes 500 ms apart: the times (s) busy
   * was read, and which of them the sweep's.
   */
  function run(sweepLikeAnyRead: boolean, busyUntilMs: number, untilMs: number): { reads: number[]; swept: number[] } {
    let now = 10_000_000;
    const changes = new QueueChanges();
    const refs: QueueRef[] = Array.from({ length: 60 }, (_, i) => ({ prefix: 'p', name: i === 0 ? 'busy' : `q${i}` }));
    changes.follow(refs);
    const plan = new ChangePlan({ changes, sweepMs: 60_000, idleSweepMs: 600_000, busyRereadMs: 1000, sweepLikeAnyRead, now: () => now });
    const busy = refs[0] as QueueRef;
    const reads: number[] = [];
    const swept: number[] = [];
    for (let t = 0; t <= untilMs; t += 500) {
      now = 10_000_000 + t;
      // Its events read once per 15 s (a paced reader, one refresh per scrape): marked then.
      if (t < busyUntilMs && t % 15_000 === 0) changes.mark([busy], ['state']);
      const p = plan.plan(refs);
      for (const ref of p.read) plan.keep({ ref, nowMs: now, reading: { ...atRisk, lockExpiresMs: now + 30_000 } });
      if (p.read.some((r) => r.name === 'busy')) reads.push(t / 1000);
      if (p.swept.has(queueId(busy))) swept.push(t / 1000);
    }
    return { reads, swept };
  }

  it('does not sweep a busy queue it re-reads anyway, and still reads one at risk within the sweep period of its last read', () => {
    const plain = run(false, 180_000, 180_000);
    const spared = run(true, 180_000, 180_000);
    // Busy for 3 minutes, re-read every 15 s: the plain sweep adds its own reads (one a minute, at 1, 61 and 121 s),
    // sweepLikeAnyRead only the idle sweep's (every queue once per 10 minutes, whatever it holds: its turn at 10 s).
    expect(plain.swept).toEqual([1, 10, 61, 121]);
    expect(spared.swept).toEqual([10]);
    expect(spared.reads.length).toBeLessThan(plain.reads.length);
    // Busy for a minute, then no event for three: read at least once per sweep period (60 s) all along.
    const quiet = run(true, 60_000, 240_000);
    const gaps = quiet.reads.slice(1).map((r, i) => r - (quiet.reads[i] as number));
    expect(Math.max(...gaps)).toBeLessThanOrEqual(60);
    expect(quiet.reads.at(-1)).toBeGreaterThanOrEqual(180);
  });
});

describe('collectOnChange', () => {
  it('runs one prompt collection at a time: changes during one start a single next one, not one each', async () => {
    const listeners: Array<() => void> = [];
    const onChange = (l: () => void) => {
      listeners.push(l);
      return () => undefined;
    };
    let calls = 0;
    const releases: Array<() => void> = [];
    const stop = collectOnChange(
      onChange,
      () =>
        new Promise<void>((resolve) => {
          calls += 1;
          releases.push(resolve);
        }),
      0,
    );
    const change = () => listeners.forEach((l) => l());
    change();
    await waitFor('first collection', () => calls === 1);
    for (let i = 0; i < 100; i += 1) change();
    // Well past the batching delay: still the one, since it has not finished.
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toBe(1);
    releases.shift()!();
    await waitFor('one next collection', () => calls === 2);
    // Nothing changed during the second: no third, whatever the 100 marks before it.
    releases.shift()!();
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toBe(2);
    change();
    await waitFor('a third after a new change', () => calls === 3);
    releases.shift()!();
    expect(calls).toBe(3);
    stop();
  });
});
