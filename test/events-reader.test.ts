// The event reader against a real Redis with real BullMQ producers and workers (module API). Ground truth
// comes from the workload itself: what was enqueued, and the times each attempt started and ended.
import { UnrecoverableError, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCRIPT_FIELDS, type QueueEventStats } from '../src/events/accounting.js';
import { EventReader, type EventReaderOptions } from '../src/events/event-reader.js';
import { readEventAccounting } from '../src/events/read-back.js';
import { createLogger } from '../src/log/logger.js';
import { ownKeys, queueKey } from '../src/redis/keys.js';
import { type QueueRef } from '../src/domain/queue-ref.js';
import { eventsCommit, eventsInit } from '../src/redis/lua-scripts.js';
import { bindScript } from '../src/redis/scripts.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { seriesKey } from './helpers/prom-text.js';
import { monitorCommands, startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';

let OWN = 'qltest';
const log = createLogger({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let redis: TestRedis;
let raw: Redis;
let bull: BullFixtures;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  // Small radix nodes so that `MAXLEN ~ 50` really trims near 50 entries.
  redis = await startTestRedis({ args: ['--stream-node-max-entries', '10'] });
  raw = redis.client();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await bull?.close();
  await redis?.stop();
});

function reader(opts: Partial<EventReaderOptions> = {}): EventReader {
  const r = new EventReader({ redisUrl: redis.url, ownPrefix: OWN, log, leaseMs: 2000, blockMs: 100, ...opts });
  closers.push(() => r.close());
  return r;
}

async function statsOf(q: QueueRef): Promise<QueueEventStats | undefined> {
  return (await readEventAccounting(raw, OWN)).find((x) => x.queue.prefix === q.prefix && x.queue.name === q.name)?.stats;
}

function total(s: QueueEventStats, counter: string, jobName?: string): number {
  return s.counters.filter((c) => c.counter === counter && (jobName === undefined || c.jobName === jobName)).reduce((a, c) => a + c.value, 0);
}

function histo(s: QueueEventStats, histogram: string, label: string, jobName: string): { count: number; sumMs: number } {
  const h = s.histograms.find((x) => x.histogram === histogram && x.label === label && x.jobName === jobName);
  return { count: h?.count ?? 0, sumMs: (h?.sumSeconds ?? 0) * 1000 };
}

/**
 * Runs `during` with MONITOR on, `onCommand` seeing each command. ioredis now and then fails a MONITOR connection
 * whose first lines race its switch into monitor mode ("Command queue state error"); such a window proves nothing
 * either way and is watched again, after `reset` (which clears what onCommand collected).
 */
async function watched(onCommand: (args: string[]) => void, reset: () => void, during: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    reset();
    const monitor = await monitorCommands(redis, onCommand);
    await during();
    try {
      monitor.stop();
      return;
    } catch (err) {
      if (attempt >= 3 || !/Command queue state error/.test((err as Error).message)) throw err;
    }
  }
}

async function entriesAdded(q: QueueRef): Promise<number> {
  const info = (await raw.call('XINFO', 'STREAM', queueKey(q, 'events'))) as unknown[];
  return Number(info[info.indexOf('entries-added') + 1]);
}

describe('scripted workload with known ground truth', () => {
  interface Attempt {
    eligibleAt: number;
    start: number;
    end?: number;
    outcome?: 'completed' | 'failed' | 'retried' | 'stalled';
  }
  interface Truth {
    name: string;
    addedAt: number;
    nextEligibleAt: number;
    attempts: Attempt[];
  }

  it('counts every outcome exactly and measures wait, processing and end-to-end as the stream clock says', async () => {
    OWN = 'ql-workload';
    const q: QueueRef = { prefix: 'bull', name: 'workload' };
    const r = reader({ lifecycle: { jobNameLabel: true } });
    r.setQueues([q]);
    r.start();
    await waitFor('the reader to take the lease and register the queue', () => statsOf(q));

    const producer = bull.queue(q.name);
    const truth = new Map<string, Truth>();
    const add = async (name: string, opts: Parameters<Queue['add']>[2] = {}) => {
      const job = await producer.add(name, {}, opts);
      const id = job.id as string;
      if (!truth.has(id)) {
        const delay = opts.delay ?? 0;
        truth.set(id, { name, addedAt: job.timestamp, nextEligibleAt: job.timestamp + delay, attempts: [] });
      }
      return id;
    };

    // 1. A job taken by a worker process that is SIGKILLed mid-job: BullMQ reclaims it as stalled.
    const stallId = await add('stall');
    const victim = await bull.stuckWorker(q.name, 1000, { skipStalledCheck: true });
    const victimStart = Date.now();
    victim.proc.kill('SIGKILL');
    const stallTruth = truth.get(stallId) as Truth;
    stallTruth.attempts.push({ eligibleAt: stallTruth.nextEligibleAt, start: victimStart, outcome: 'stalled' });
    // Back in line when the stall is detected: some time after this.
    stallTruth.nextEligibleAt = victimStart;

    // 2. Everything else, added before any in-process worker runs.
    for (let i = 0; i < 6; i++) await add('plain');
    for (let i = 0; i < 4; i++) await add('clean', { removeOnComplete: true });
    for (let i = 0; i < 3; i++) await add('delayed', { delay: 400 + 100 * i });
    for (let i = 0; i < 2; i++) await add('flaky', { attempts: 3, backoff: { type: 'fixed', delay: 300 } });
    for (let i = 0; i < 2; i++) await add('doomed', { attempts: 2, backoff: { type: 'fixed', delay: 150 } });
    await add('unrecoverable', { attempts: 3, backoff: { type: 'fixed', delay: 150 } });
    const dedupA = await add('dedup', { deduplication: { id: 'D1' } });
    const dedupB = await add('dedup', { deduplication: { id: 'D1' } });
    expect(dedupB).toBe(dedupA);

    bull.worker(
      q.name,
      async (job) => {
        const t = truth.get(job.id as string) as Truth;
        const a: Attempt = { eligibleAt: t.nextEligibleAt, start: Date.now() };
        t.attempts.push(a);
        await sleep(20 + (t.attempts.length % 3) * 15);
        const fail = (outcome: 'failed' | 'retried', backoff: number, err: Error) => {
          a.end = Date.now();
          a.outcome = outcome;
          t.nextEligibleAt = a.end + backoff;
          throw err;
        };
        if (t.name === 'flaky' && job.attemptsMade < 2) fail('retried', 300, new Error('flaky'));
        if (t.name === 'doomed') fail(job.attemptsMade < 1 ? 'retried' : 'failed', 150, new Error('doomed'));
        if (t.name === 'unrecoverable') fail('failed', 0, new UnrecoverableError('never'));
        a.end = Date.now();
        a.outcome = 'completed';
        return 'ok';
      },
      { concurrency: 4, stalledInterval: 500, lockDuration: 1000, maxStalledCount: 1 },
    );
    const final = (t: Truth) => ['completed', 'failed'].includes(t.attempts.at(-1)?.outcome ?? '');
    await waitFor('every job to reach its final state', async () => [...truth.values()].every(final), 30_000).catch((err) => {
      console.log(JSON.stringify([...truth.entries()].filter(([, t]) => !final(t))));
      throw err;
    });

    // Ground truth, by design of the workload: 1 stall + 6 plain + 4 clean + 3 delayed + 2 flaky + 2 doomed + 1 unrecoverable + 1 dedup.
    const expected = { added: 20, completed: 17, failed: 3, retried: 2 * 2 + 2 * 1, stalled: 1, deduplicated: 1 };
    const s = await waitFor('the reader to account for every outcome', async () => {
      const st = await statsOf(q);
      return st && total(st, 'completed') + total(st, 'failed') === expected.completed + expected.failed && st;
    });
    for (const [counter, value] of Object.entries(expected)) expect(total(s, counter), counter).toBe(value);
    expect(s.reader).toMatchObject({ lost: 0, unmatched: 0, evicted: 0 });
    await waitFor('the reader to read the whole stream', async () => (await statsOf(q))?.reader.read === (await entriesAdded(q)));

    // Histograms per job name, against two ground truths that hold on a loaded machine. The exact one is the clock the
    // reader measures with: the Redis entry times of the job's own stream entries, turned into latencies by the
    // documented definitions (wait from eligibility: the add, the due time of a delay or backoff, the re-queue after a
    // stall; processing from `active` to the entry that ends the attempt; end-to-end from `added` to the outcome).
    // The times taken inside the job cannot be compared to the millisecond (a busy event loop runs the processor long
    // after Redis wrote `active`), but they bound the reader's numbers from the side that load cannot move.
    const perJob = new Map<string, Array<{ ms: number; event: string; prev?: string; delay?: string }>>();
    for (const [id, flat] of (await raw.xrange(queueKey(q, 'events'), '-', '+')) as Array<[string, string[]]>) {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
      if (f.jobId === undefined || !truth.has(f.jobId)) continue;
      perJob.set(f.jobId, [...(perJob.get(f.jobId) ?? []), { ms: Number(id.split('-')[0]), event: f.event!, prev: f.prev, delay: f.delay }]);
    }
    const streamSeries = new Map<string, number[]>();
    const put = (into: Map<string, number[]>, key: string, ms: number) => into.set(key, [...(into.get(key) ?? []), ms]);
    for (const [id, t] of truth) {
      const entries = perJob.get(id)!;
      const outcomes = t.attempts.map((a) => a.outcome);
      let eligible: number | undefined;
      let due: number | undefined;
      let delayedAt: number | undefined;
      let activeAt: number | undefined;
      let attempt = -1;
      let addedAt: number | undefined;
      for (const e of entries) {
        const endAttempt = () => {
          if (activeAt !== undefined && outcomes[attempt] !== 'stalled') put(streamSeries, `processing|${outcomes[attempt]}|${t.name}`, e.ms - activeAt);
          activeAt = undefined;
        };
        if (e.event === 'added') addedAt = eligible = e.ms;
        else if (e.event === 'delayed') {
          endAttempt();
          [due, delayedAt, eligible] = [Number(e.delay), e.ms, undefined];
        } else if (e.event === 'waiting' && e.prev === 'delayed') eligible = Math.min(e.ms, Math.max(due!, delayedAt!));
        else if (e.event === 'waiting') {
          if (e.prev === 'active') endAttempt();
          eligible = e.ms;
        } else if (e.event === 'active') {
          attempt += 1;
          put(streamSeries, `wait|${attempt === 0 ? 'first' : 'retry'}|${t.name}`, e.ms - eligible!);
          activeAt = e.ms;
        } else if (e.event === 'completed' || e.event === 'failed') {
          endAttempt();
          put(streamSeries, `e2e|${e.event}|${t.name}`, e.ms - addedAt!);
        }
      }
    }
    const after = (await statsOf(q)) as QueueEventStats;
    const observedKeys = new Set(after.histograms.map((h) => `${h.histogram}|${h.label}|${h.jobName}`));
    expect(observedKeys).toEqual(new Set(streamSeries.keys()));
    const sum = (values: number[]) => values.reduce((x, y) => x + y, 0);
    for (const [key, values] of streamSeries) {
      const [histogram, label, name] = key.split('|') as [string, string, string];
      const got = histo(after, histogram, label, name);
      expect(got.count, key).toBe(values.length);
      // Exact up to the float sum of seconds.
      expect(Math.abs(got.sumMs - sum(values)), `${key}: observed ${got.sumMs} ms, stream ${sum(values)} ms`).toBeLessThan(0.01);
    }

    // The bounds from the job's side. Redis wrote `active` before the processor took its start time and the outcome after
    // it took its end time, so processing is never shorter than the job saw it. Eligibility (the add, the due time, the
    // end of a backoff) was never before the time the test recorded for it, so a wait is never longer than from there to
    // the start: a delay or backoff counted as waiting would break that by 150 ms or more.
    const waitCeiling = new Map<string, number>();
    const processingFloor = new Map<string, number>();
    const plus = (m: Map<string, number>, key: string, ms: number) => m.set(key, (m.get(key) ?? 0) + ms);
    for (const t of truth.values()) {
      t.attempts.forEach((a, i) => {
        plus(waitCeiling, `${i === 0 ? 'first' : 'retry'}|${t.name}`, a.start - a.eligibleAt);
        if (a.outcome !== 'stalled' && a.end !== undefined) plus(processingFloor, `${a.outcome}|${t.name}`, a.end - a.start);
      });
    }
    const split = (key: string) => key.split('|') as [string, string];
    for (const [key, ms] of waitCeiling) expect(histo(after, 'wait', ...split(key)).sumMs, `wait|${key}`).toBeLessThanOrEqual(ms);
    for (const [key, ms] of processingFloor) expect(histo(after, 'processing', ...split(key)).sumMs, `processing|${key}`).toBeGreaterThanOrEqual(ms);
    expect(histo(after, 'wait', 'retry', 'flaky').count).toBe(4);
  });
});

describe('fencing and leadership', () => {
  it('a commit or claim of an older generation writes nothing once a newer term claimed the queue', async () => {
    const client = redis.client();
    const commit = bindScript(client, eventsCommit);
    const init = bindScript(client, eventsInit);
    const q: QueueRef = { prefix: 'bull', name: 'fenced' };
    const hash = ownKeys.eventsQueue(OWN, q);
    const stream = queueKey(q, 'events');
    const claim = (gen: number) => init({ gen, installedAt: '0', queues: [{ hash, stream, fresh: false }] });
    const write = (gen: number, committedId: string, cursor: string, added: number) =>
      commit({ gen, graceMs: 1000, heartbeatField: 'hb|all', queues: [{ hash, stream, committedId, cursor, applied: 1, fields: ['c|added|', added] }] });
    // Never claimed: no generation may commit.
    expect(await write(7, '0-0', '1-0', 5)).toBeNull();
    expect(await client.exists(hash)).toBe(0);
    expect(await claim(7)).toEqual({ cursors: ['0-0'] });
    expect(await write(7, '0-0', '1-0', 5)).toEqual([{ lost: 0, caughtUp: false, length: -1 }]);
    // Term 8 claims; term 7 (paused past its lease) can neither commit nor claim back.
    expect(await claim(8)).toEqual({ cursors: ['1-0'] });
    expect(await write(7, '1-0', '2-0', 6)).toBeNull();
    expect(await claim(7)).toEqual({ newerGeneration: 8 }); // refused, naming the stored generation
    expect(await client.hget(hash, 'c|added|')).toBe('5');
    expect(await client.hget(hash, 'r|gen')).toBe('8');
    expect(await write(8, '1-0', '2-0', 6)).toEqual([{ lost: 0, caughtUp: false, length: -1 }]);
    expect(await client.hget(hash, 'c|added|')).toBe('6');
    // A caller whose memory is ahead of the stored cursor (the hash rolled back in a failover) writes nothing.
    await expect(write(8, '3-0', '4-0', 9)).rejects.toThrow(/ROLLEDBACK/);
    expect(await client.hmget(hash, 'c|added|', 'r|cursor', 'r|seen')).toEqual(['6', '2-0', '2']);
    await client.del(hash);
  });

  it('one leader at a time; a leader whose lease was taken stops writing; totals stay exact across the change', async () => {
    OWN = 'ql-handover';
    const q: QueueRef = { prefix: 'bull', name: 'handover' };
    const a = reader();
    const b = reader();
    for (const r of [a, b]) {
      r.setQueues([q]);
      r.start();
    }
    await waitFor('a leader', async () => a.isLeader || b.isLeader);
    expect(a.isLeader && b.isLeader).toBe(false);
    await waitFor('the queue to be registered', () => statsOf(q));
    const [first, second] = a.isLeader ? [a, b] : [b, a];

    const producer = bull.queue(q.name);
    let done = 0;
    const worker = bull.worker(q.name, async () => sleep(2), { concurrency: 5 });
    worker.on('completed', () => (done += 1));
    const batch = async (n: number) => {
      const target = done + n;
      await producer.addBulk(Array.from({ length: n }, () => ({ name: 'j', data: {} })));
      await waitFor('the batch to complete', async () => done >= target);
    };

    await batch(50);
    // Someone else holds the lease (as if the leader had been paused past its lease): the old leader must notice,
    // stop, and never write with its old token. The intruder holds it until it lets go, however slow the batch is.
    const lease = ownKeys.leader(OWN);
    await raw.set(lease, 'intruder', 'PX', 120_000);
    await waitFor('the old leader to step down', async () => !first.isLeader);
    const frozen = await raw.hgetall(ownKeys.eventsQueue(OWN, q));
    await batch(50);
    expect(await raw.hgetall(ownKeys.eventsQueue(OWN, q))).toEqual(frozen);
    await raw.del(lease);
    await waitFor('a new leader after the intruder let go', async () => first.isLeader || second.isLeader);
    await batch(50);
    // The leader shuts down cleanly: it releases the lease (rather than leaving it to expire), so the other takes over
    // at its next try. The key itself is the proof: no longer the old leader's token right after close().
    const leader = first.isLeader ? first : second;
    const other = leader === first ? second : first;
    const heldBy = await raw.get(lease);
    await leader.close();
    expect(await raw.get(lease)).not.toBe(heldBy);
    await waitFor('the standby to take over after release', async () => other.isLeader);
    await batch(50);

    const s = await waitFor('all 200 completions accounted', async () => {
      const st = await statsOf(q);
      return st && total(st, 'completed') === 200 && st;
    });
    expect(total(s, 'added')).toBe(200);
    await waitFor('the reader to read the whole stream', async () => (await statsOf(q))?.reader.read === (await entriesAdded(q)));
    expect((await statsOf(q))?.reader.lost).toBe(0);
    await other.close();
  });
});

describe('loss accounting', () => {
  it('counts exactly the entries trimmed while no reader ran', async () => {
    OWN = 'ql-loss';
    const q: QueueRef = { prefix: 'bull', name: 'lossy' };
    const producer = bull.queue(q.name, { streams: { events: { maxLen: 50 } } });
    let done = 0;
    const worker = bull.worker(q.name, async () => undefined, { concurrency: 5 });
    worker.on('completed', () => (done += 1));
    const run = async (n: number) => {
      const target = done + n;
      for (let i = 0; i < n; i++) await producer.add('j', {});
      await waitFor('jobs to complete', async () => done >= target);
    };

    const first = reader();
    first.setQueues([q]);
    first.start();
    await waitFor('the queue to be registered', () => statsOf(q));
    await run(10);
    await waitFor('the first reader to catch up', async () => (await statsOf(q))?.reader.read === (await entriesAdded(q)));
    const cursorAtStop = await raw.hget(ownKeys.eventsQueue(OWN, q), 'r|cursor');
    const addedAtStop = await entriesAdded(q);
    await first.close();

    await run(150); // ≈ 450 entries into a stream capped near 50
    const info = (await raw.call('XINFO', 'STREAM', queueKey(q, 'events'))) as unknown[];
    const field = (k: string) => info[info.indexOf(k) + 1];
    const firstRetained = String(field('recorded-first-entry-id'));
    const [fm, fs] = firstRetained.split('-').map(Number) as [number, number];
    const [cm, cs] = String(cursorAtStop).split('-').map(Number) as [number, number];
    expect(fm > cm || (fm === cm && fs > cs), 'the stream was trimmed past the stopped reader').toBe(true);
    const retained = Number(field('length'));
    const addedNow = Number(field('entries-added'));
    const trimmedUnread = addedNow - addedAtStop - retained;
    expect(trimmedUnread).toBeGreaterThan(300);

    const second = reader();
    second.setQueues([q]);
    second.start();
    const s = await waitFor('the restarted reader to catch up', async () => {
      const st = await statsOf(q);
      return st && st.reader.read === addedAtStop + retained && st;
    });
    expect(s.reader.lost).toBe(trimmedUnread);
    // And no more loss once it keeps up.
    await run(20);
    await waitFor('caught up again', async () => {
      const st = await statsOf(q);
      return st && st.reader.read + st.reader.lost === (await entriesAdded(q));
    });
    expect((await statsOf(q))?.reader.lost).toBe(trimmedUnread);
    await second.close();
  });
});

describe('many queues', () => {
  it('reads every queue exactly when the streams are split over several XREAD groups', async () => {
    OWN = 'ql-groups';
    const queues: QueueRef[] = Array.from({ length: 5 }, (_, i) => ({ prefix: 'bull', name: `grouped-${i}` }));
    const r = reader({ streamsPerRead: 2, count: 7 });
    r.setQueues(queues);
    r.start();
    await waitFor('all registered', async () => (await readEventAccounting(raw, OWN)).length === queues.length);
    for (const [i, q] of queues.entries()) {
      bull.worker(q.name, async () => undefined, { concurrency: 3 });
      await bull.queue(q.name).addBulk(Array.from({ length: 10 * (i + 1) }, () => ({ name: 'j', data: {} })));
    }
    for (const [i, q] of queues.entries()) {
      const s = await waitFor(`queue ${q.name} complete`, async () => {
        const st = await statsOf(q);
        return st && total(st, 'completed') === 10 * (i + 1) && st;
      });
      expect(total(s, 'added')).toBe(10 * (i + 1));
      expect(s.reader).toMatchObject({ lost: 0, unmatched: 0 });
    }
    await r.close();
  });
});

describe('pacing', () => {
  it('with entries arriving all the time, starts a read at most once per minRoundMs, and still reads every entry', async () => {
    OWN = 'ql-paced';
    const q: QueueRef = { prefix: 'bull', name: 'paced' };
    const stream = queueKey(q, 'events');
    const r = reader({ blockMs: 400, minRoundMs: 200 });
    r.setQueues([q]);
    r.start();
    await waitFor('registered', () => statsOf(q));
    // A stream that retains far more than arrives per pause (as BullMQ's default 10,000 entries): pacing is safe.
    let written = 0;
    for (; written < 2000; written += 1) await raw.xadd(stream, '*', 'event', 'added', 'jobId', `j${written}`, 'name', 'x');
    await waitFor('the first entries read', async () => total((await statsOf(q))!, 'added') === written);
    // Ground truth: the XREADs of this stream that reach Redis while an entry is written every 10 ms for 2 s.
    let reads = 0;
    let elapsed = 0;
    await watched(
      (args) => {
        if (/^xread$/i.test(args[0] ?? '') && args.includes(stream)) reads += 1;
      },
      () => (reads = 0),
      async () => {
        const started = Date.now();
        while (Date.now() - started < 2000) {
          await raw.xadd(stream, '*', 'event', 'added', 'jobId', `j${written}`, 'name', 'x');
          written += 1;
          await sleep(10);
        }
        elapsed = Date.now() - started;
      },
    );
    // One read per 200 ms, plus the one under way when the window opened.
    expect(reads).toBeLessThanOrEqual(Math.ceil(elapsed / 200) + 1);
    expect(reads).toBeGreaterThan(0);
    await waitFor('every entry read', async () => total((await statsOf(q))!, 'added') === written);
    await r.close();
  });
});

describe('retention', () => {
  it('forgets the state of a queue gone longer than the retention, keeps the others', async () => {
    OWN = 'ql-retention';
    const keep: QueueRef = { prefix: 'bull', name: 'kept' };
    const gone: QueueRef = { prefix: 'bull', name: 'vanished' };
    const r = reader({ retentionMs: 300, maintenanceMs: 100 });
    r.setQueues([keep, gone]);
    r.start();
    await waitFor('both registered', async () => (await statsOf(keep)) && (await statsOf(gone)));
    r.setQueues([keep]);
    // Its hash is deleted first, then its index member in a command of its own (a CI run with two CPU hogs saw the
    // hash gone and the member still there): both must go.
    await waitFor(
      'the vanished queue forgotten',
      async () => (await raw.exists(ownKeys.eventsQueue(OWN, gone))) === 0 && (await raw.zscore(ownKeys.eventsIndex(OWN), 'bull:vanished')) === null,
    );
    await sleep(400);
    expect(await statsOf(keep)).toBeDefined();
    await r.close();
  });
});

describe('lag', () => {
  // Grace = 2 × refresh + block = 500 ms: how late a caught-up queue's refresh may be before it shows as lag.
  const LAG = { lagRefreshMs: 200, blockMs: 100 };
  const GRACE_S = 0.5;
  const lagOf = async (q: QueueRef) => (await statsOf(q))?.reader.lagSeconds;

  it('grows on the other replicas while the leader is stalled, by the time since it stopped committing', async () => {
    OWN = 'ql-lag-stall';
    const q: QueueRef = { prefix: 'bull', name: 'lag-stall' };
    const proxy = await startTcpProxy(redis.port);
    closers.push(() => proxy.stop());
    // A long lease: the stalled leader is not replaced during the test, as when only its reads hang.
    const r = reader({ ...LAG, redisUrl: `redis://127.0.0.1:${proxy.port}`, leaseMs: 30_000 });
    r.setQueues([q]);
    r.start();
    await waitFor('registered', () => statsOf(q));
    const addedAt = Date.now();
    await bull.queue(q.name).add('j', {});
    await waitFor('the job counted', async () => (await statsOf(q)) && total((await statsOf(q))!, 'added') === 1);
    // Caught up: nothing unread can be older than the job just counted, so the lag is at most the time since its add
    // (a busy machine may commit with a few milliseconds of lag: the entry's age when it was read).
    const caughtUp = (await lagOf(q))!;
    expect(caughtUp).toBeLessThanOrEqual((Date.now() - addedAt) / 1000 + 0.002);

    proxy.stall();
    const stalledAt = Date.now();
    await bull.queue(q.name).add('j', {}); // unread from now on
    await sleep(1500);
    // Each read is bracketed by the test's clock (the same system clock as Redis's TIME on this machine).
    const read = async () => ({ before: Date.now(), lag: (await lagOf(q))!, after: Date.now() });
    const r1 = await read();
    await sleep(1500);
    const r2 = await read();
    // No commit since the stall, and the last one came after the job was counted: the lag runs from a commit
    // between those two moments, minus the grace of a caught-up queue.
    expect(r1.lag).toBeGreaterThanOrEqual((r1.before - stalledAt) / 1000 - GRACE_S - 0.002);
    expect(r1.lag).toBeLessThanOrEqual((r1.after - addedAt) / 1000 + 0.002);
    // It ages with the clock between the two reads.
    expect(r2.lag - r1.lag).toBeGreaterThanOrEqual((r2.before - r1.after) / 1000 - 0.002);
    expect(r2.lag - r1.lag).toBeLessThanOrEqual((r2.after - r1.before) / 1000 + 0.002);
    expect(r2.lag - r1.lag).toBeGreaterThan(1);
    proxy.resume();
    await r.close();
  }, 20_000);

  it('stays 0 for caught-up queues with no new events, while idle streams cost no per-queue write or XINFO', async () => {
    OWN = 'ql-lag-idle';
    // Several XREAD groups, as at scale: the idle rounds are paced, not blocking reads.
    const queues: QueueRef[] = [0, 1, 2].map((i) => ({ prefix: 'bull', name: `lag-idle-${i}` }));
    const r = reader({ ...LAG, streamsPerRead: 2 });
    r.setQueues(queues);
    r.start();
    await waitFor('registered', async () => (await readEventAccounting(raw, OWN)).length === queues.length);
    for (const q of queues) await bull.queue(q.name).add('j', {});
    await waitFor('the jobs counted', async () => {
      for (const q of queues) if (total((await statsOf(q))!, 'added') !== 1) return false;
      return true;
    });
    // Let every queue settle (one commit after its stream was found at its end), then watch six graces of
    // nothing happening. Ground truth is what reaches Redis: no write to a queue's hash, no XINFO of its
    // stream, and the stored lag stays 0; the shard's heartbeat is what moves.
    await sleep(1000);
    const hashes = new Set(queues.map((q) => ownKeys.eventsQueue(OWN, q)));
    const streams = new Set(queues.map((q) => queueKey(q, 'events')));
    const mine = (args: string[]) => args.some((x) => hashes.has(x) || streams.has(x));
    const hb = async () => raw.hget(ownKeys.eventsMeta(OWN), 'hb|all');
    const firstBeat = await hb();
    let perQueue: string[] = [];
    let reads = 0;
    await watched(
      (args) => {
        const cmd = (args[0] ?? '').toLowerCase();
        if (cmd === 'xread') {
          if (mine(args)) reads += 1;
        } else if (mine(args)) perQueue.push(args.join(' '));
      },
      () => {
        perQueue = [];
        reads = 0;
      },
      async () => void (await sleep(3000)),
    );
    expect(perQueue).toEqual([]);
    // Nothing was written to any stream: the reader checks Redis's XADD count instead of reading them
    // (events/idle-gate.ts, test/events-idle-gate.test.ts), and the heartbeat keeps being written.
    expect(reads).toBe(0);
    expect(await hb()).not.toBe(firstBeat);
    for (const q of queues) expect(Number(await raw.hget(ownKeys.eventsQueue(OWN, q), SCRIPT_FIELDS.lagMs))).toBe(0);
    // The lag every replica computes ages from the heartbeat, not from the queue's old commit.
    await waitFor('the displayed lag at 0', async () => {
      for (const q of queues) if ((await lagOf(q)) !== 0) return false;
      return true;
    });
    // A new event after the quiet spell is still seen.
    await bull.queue(queues[1]!.name).add('j', {});
    await waitFor('the new job counted', async () => total((await statsOf(queues[1]!))!, 'added') === 2);
    await r.close();
  });

  it('commits a queue once for what it read and once more to settle it, then not again while its stream stays idle', async () => {
    OWN = 'ql-lag-once';
    // Several XREAD groups, as at scale, so empty reads of the queue follow its read.
    const queues: QueueRef[] = [0, 1, 2].map((i) => ({ prefix: 'bull', name: `lag-once-${i}` }));
    const q = queues[1]!;
    const r = reader({ ...LAG, streamsPerRead: 2 });
    r.setQueues(queues);
    r.start();
    await waitFor('registered', async () => (await readEventAccounting(raw, OWN)).length === queues.length);
    await sleep(1000);
    const hash = ownKeys.eventsQueue(OWN, q);
    // Ground truth: the commit calls that reach Redis for this queue's hash (EVALSHA names it among its keys).
    let commits = 0;
    await watched(
      (args) => {
        if (/^evalsha$/i.test(args[0] ?? '') && args.includes(hash)) commits += 1;
      },
      () => (commits = 0),
      async () => {
        // One job: its `added` and `waiting` entries come from one BullMQ script, so one XREAD reads both.
        const before = (await statsOf(q)) ? total((await statsOf(q))!, 'added') : 0;
        await bull.queue(q.name).add('j', {});
        await waitFor('the job counted', async () => total((await statsOf(q))!, 'added') === before + 1);
        // Many empty rounds of the queue's group after it.
        await sleep(2500);
      },
    );
    // The commit of what it read leaves the queue open (its lag ages from that commit: more may come and wait for the
    // pace); the next read finding the stream at its end settles it, and the empty reads after that write nothing.
    expect(commits).toBe(2);
    // The settling commit stored the queue as caught up; the shard's heartbeat vouches for it from then on.
    expect(Number(await raw.hget(hash, SCRIPT_FIELDS.lagMs))).toBe(0);
    expect(await raw.hget(hash, SCRIPT_FIELDS.heartbeat)).toBe('hb|all');
    await r.close();
  });

  it('is not rendered, nor any series of it, for a queue discovery no longer lists (obliterated)', async () => {
    const own = 'ql-lag-gone';
    const s = await testSidecar(redis.url, { ownPrefix: own, queues: undefined, prefixes: 'lagp' });
    closers.push(() => s.close());
    const kept = bull.queue('lag-kept', { prefix: 'lagp' });
    const gone = bull.queue('lag-gone', { prefix: 'lagp' });
    // Discovery finds a queue by its keys; the reader counts what is added after it registered the queue.
    await kept.add('j', {});
    await gone.add('j', {});
    await s.start();
    const lag = (queue: string) => seriesKey('bullmq_exporter_events_lag_seconds', { prefix: 'lagp', queue });
    const added = (queue: string) => seriesKey('bullmq_jobs_added_total', { prefix: 'lagp', queue });
    await waitFor('both queues registered', async () => {
      await s.refresh();
      const m = await s.scrape();
      return m.has(added('lag-kept')) && m.has(added('lag-gone'));
    });
    await kept.add('j', {});
    await gone.add('j', {});
    await waitFor('both queues read', async () => {
      await s.refresh();
      const m = await s.scrape();
      return m.get(added('lag-kept')) === 1 && m.get(added('lag-gone')) === 1 && m.get(lag('lag-gone')) === 0;
    });
    await gone.obliterate({ force: true });
    await s.refresh();
    const m = await s.scrape();
    expect(m.get(lag('lag-gone'))).toBeUndefined();
    expect([...m.keys()].filter((k) => k.includes('queue="lag-gone"'))).toEqual([]);
    expect(m.get(added('lag-kept'))).toBe(1);
    expect(m.get(lag('lag-kept'))).toBe(0);
    // Its reader would keep writing while later tests watch MONITOR.
    await s.close();
  });
});

describe('read-back', () => {
  it('returns every queue exactly once while the index is re-scored concurrently (>500 queues)', async () => {
    OWN = 'ql-readback';
    const N = 1300;
    const index = ownKeys.eventsIndex(OWN);
    const pipe = raw.pipeline();
    const names = Array.from({ length: N }, (_, i) => `rb-${i}`);
    names.forEach((name, i) => {
      pipe.zadd(index, i, `bull:${name}`);
      pipe.hset(ownKeys.eventsQueue(OWN, { prefix: 'bull', name }), 'r|read', i);
    });
    await pipe.exec();
    // Touches as maintain() does them: members move to the young end while a read-back pages.
    let touching = true;
    let score = N;
    const toucher = (async () => {
      const mover = redis.client();
      while (touching) {
        const p = mover.pipeline();
        for (let k = 0; k < 50; k++) p.zadd(index, score++, `bull:${names[(score * 7) % N]}`);
        await p.exec();
      }
    })();
    try {
      for (let round = 0; round < 15; round++) {
        const got = await readEventAccounting(raw, OWN);
        const seen = got.map((x) => x.queue.name);
        expect({ round, n: seen.length, distinct: new Set(seen).size }).toEqual({ round, n: N, distinct: N });
        // Each queue with its own hash, not a neighbour's.
        for (const x of got) expect(x.stats.reader.read).toBe(Number(x.queue.name.slice(3)));
      }
    } finally {
      touching = false;
      await toucher;
    }
  });
});

describe('errors', () => {
  it('after a failover rolled its state and stream back, the reader counts what Redis holds, not what it remembers', async () => {
    OWN = 'ql-rollback';
    const q: QueueRef = { prefix: 'bull', name: 'rollback' };
    const hash = ownKeys.eventsQueue(OWN, q);
    const stream = queueKey(q, 'events');
    const r = reader();
    r.setQueues([q]);
    r.start();
    await waitFor('registered', async () => (await raw.exists(hash)) === 1);
    const caughtUp = async () => {
      const st = await statsOf(q);
      return st !== undefined && st.reader.read + st.reader.lost === (await entriesAdded(q));
    };
    for (let i = 0; i < 5; i++) await bull.queue(q.name).add('j', {});
    await waitFor('the first jobs committed', caughtUp);
    // What a replica holds when it is promoted before the next writes reached it: both keys as of now.
    const [[, state], [, events]] = (await raw.multi().dumpBuffer(hash).dumpBuffer(stream).exec()) as [[null, Buffer], [null, Buffer]];
    for (let i = 0; i < 5; i++) await bull.queue(q.name).add('j', {});
    await waitFor('the lost jobs committed', caughtUp);
    await raw.multi().restore(hash, 0, state!, 'REPLACE').restore(stream, 0, events!, 'REPLACE').exec();
    for (let i = 0; i < 3; i++) await bull.queue(q.name).add('j', {});

    const added = (await raw.xrange(stream, '-', '+')).filter(([, f]) => f[1] === 'added').length;
    expect(added).toBe(8);
    await waitFor('the reader to account for the surviving stream', async () => (await caughtUp()) && total((await statsOf(q))!, 'added') === added);
    expect((await statsOf(q))!.reader.lost).toBe(0);
    await r.close();
  });

  it('a failing group reloads only its own queues, not every queue with its history replay', async () => {
    OWN = 'ql-reload';
    const ok: QueueRef[] = [0, 1, 2].map((i) => ({ prefix: 'bull', name: `reload-ok-${i}` }));
    const bad: QueueRef = { prefix: 'bull', name: 'reload-bad' };
    // History before the reader starts: loading a queue replays it (XREVRANGE on its stream).
    for (const q of ok) await bull.queue(q.name).add('j', {});
    // Not a stream: every XREAD that names it fails with WRONGTYPE.
    await raw.set(queueKey(bad, 'events'), 'x');
    const r = reader({ streamsPerRead: 1 });
    r.setQueues([...ok, bad]);
    r.start();
    await waitFor('all registered', async () => (await readEventAccounting(raw, OWN)).length === 4);
    await sleep(300);

    const okStreams = new Set(ok.map((q) => queueKey(q, 'events')));
    let replays = 0;
    let badReads = 0;
    const monitor = await monitorCommands(redis, (args) => {
      const cmd = (args[0] ?? '').toLowerCase();
      if (cmd === 'xrevrange' && okStreams.has(args[1] ?? '')) replays += 1;
      if (cmd === 'xread' && args.includes(queueKey(bad, 'events'))) badReads += 1;
    });
    await waitFor('the bad group to fail three times', () => badReads >= 3, 10_000);
    monitor.stop();
    expect(replays).toBe(0);

    // The healthy queues are still read.
    await bull.queue(ok[0]!.name).add('j', {});
    await waitFor('the new job counted', async () => total((await statsOf(ok[0]!))!, 'added') === 1);
    await r.close();
  });
});
