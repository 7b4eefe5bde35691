// Event accounting across real sidecar processes on one Redis: replicas export the same numbers, a
// SIGKILLed leader is replaced within its lease without double counting or resetting, and entries trimmed
// while no sidecar ran are counted as lost, exactly.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardOf } from '../src/events/event-shards.js';
import { ownKeys, queueKey } from '../src/redis/keys.js';
import { type QueueRef } from '../src/domain/queue-ref.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { spawnCli, type CliProcess } from './helpers/cli.js';
import { parsePromText, seriesKey, type Series } from './helpers/prom-text.js';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { caughtUp as caughtUpIn, metric, startSidecarProcess } from './helpers/sidecar-process.js';

const LEASE_S = 3;
let redis: TestRedis;
let raw: Redis;
let bull: BullFixtures;
/** Everything started here, stopped at the end: CLI processes directly, helper processes by stop(). */
const sidecars: Array<CliProcess | { stop(): Promise<void> }> = [];

beforeAll(async () => {
  redis = await startTestRedis({ args: ['--stream-node-max-entries', '10'] });
  raw = redis.client();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  for (const s of sidecars) {
    if ('stop' in s) await s.stop();
    else if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
  }
  await bull?.close();
  await redis?.stop();
});

interface Sidecar {
  cli: CliProcess;
  metrics(): Promise<Series>;
}

async function startSidecar(own: string, queues: string, extra: string[] = [], leaseS = LEASE_S): Promise<Sidecar> {
  const port = await freePort();
  const cli = spawnCli(
    [
      'sidecar',
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--collect-interval',
      '0.2',
      '--queues',
      queues,
      '--own-prefix',
      own,
      '--events-lease',
      String(leaseS),
      ...extra,
    ],
    { REDIS_URL: redis.url, LOG_LEVEL: 'warn' },
  );
  sidecars.push(cli);
  const metrics = async () => parsePromText(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  await waitFor('sidecar serving', () => metrics().catch(() => undefined));
  // A reader counts a stream from its beginning only if it was registered before the stream's first entry (else
  // that history is neither counted nor lost): the workload must not start before some leader registered the queues.
  await waitFor('a leader to register the queues', async () => {
    for (const name of queues.split(',')) if (!(await raw.hexists(ownKeys.eventsQueue(own, { prefix: 'bull', name }), 'r|cursor'))) return false;
    return true;
  });
  return { cli, metrics };
}

const labels = (q: QueueRef) => ({ prefix: q.prefix, queue: q.name });

async function entriesAdded(q: QueueRef): Promise<number> {
  const info = (await raw.call('XINFO', 'STREAM', queueKey(q, 'events'))) as unknown[];
  return Number(info[info.indexOf('entries-added') + 1]);
}

/** The sidecar's metrics once it has read (or counted lost) every entry of the stream. */
async function caughtUp(s: Sidecar, q: QueueRef): Promise<Series> {
  return waitFor(
    'the sidecar to account for the whole stream',
    async () => {
      const m = await s.metrics();
      const read = m.get(seriesKey('bullmq_exporter_events_read_total', labels(q))) ?? 0;
      const lost = m.get(seriesKey('bullmq_exporter_events_lost_total', labels(q))) ?? 0;
      return read + lost === (await entriesAdded(q)) && m;
    },
    20_000,
  );
}

/** Jobs that fail for good when i % 7 == 0, complete otherwise: ground truth per added batch. */
function workload(queue: Queue) {
  const truth = { added: 0, completed: 0, failed: 0 };
  let i = 0;
  return {
    truth,
    async add(n: number) {
      await queue.addBulk(Array.from({ length: n }, () => ({ name: 'j', data: { fail: i++ % 7 === 0 } })));
      truth.added += n;
      truth.failed += Array.from({ length: n }, (_, k) => (i - n + k) % 7 === 0).filter(Boolean).length;
      truth.completed = truth.added - truth.failed;
    },
  };
}

function startWorker(name: string): void {
  bull.worker(
    name,
    async (job) => {
      if ((job.data as { fail: boolean }).fail) throw new Error('terminal');
    },
    { concurrency: 10 },
  );
}

function eventSeries(m: Series): Record<string, number> {
  return Object.fromEntries([...m].filter(([k]) => /^bullmq_(jobs_|job_|exporter_events_|dlq_added)/.test(k)));
}

describe('event accounting across sidecar processes', () => {
  it('two replicas export identical counters; only one is leader', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'replicas' };
    const a = await startSidecar('ql-replicas', q.name);
    const b = await startSidecar('ql-replicas', q.name);
    const w = workload(bull.queue(q.name));
    startWorker(q.name);
    await w.add(200);
    const ma = await caughtUp(a, q);
    expect(ma.get(seriesKey('bullmq_jobs_completed_total', labels(q)))).toBe(w.truth.completed);
    await caughtUp(b, q);
    // Both have collected after the leader settled the queue (its stream found at its end after the last commit that
    // applied entries: lag 0 from then on, vouched for by the heartbeat; until then the lag ages from that commit, on
    // each replica's own read-back): their event series are the same, value for value.
    const lag = seriesKey('bullmq_exporter_events_lag_seconds', labels(q));
    await waitFor('both see the queue settled', async () => (await a.metrics()).get(lag) === 0 && (await b.metrics()).get(lag) === 0, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    const [fa, fb] = [await a.metrics(), await b.metrics()];
    expect(eventSeries(fa)).toEqual(eventSeries(fb));
    expect(fa.get(seriesKey('bullmq_jobs_added_total', labels(q)))).toBe(w.truth.added);
    expect(fa.get(seriesKey('bullmq_jobs_failed_total', labels(q)))).toBe(w.truth.failed);
    // Completed and failed jobs together (outcomes are summed on /metrics: the series budget).
    expect(fa.get(seriesKey('bullmq_job_e2e_seconds_count', labels(q)))).toBe(w.truth.completed + w.truth.failed);
    expect((fa.get('bullmq_exporter_leader') ?? 0) + (fb.get('bullmq_exporter_leader') ?? 0)).toBe(1);
    for (const s of [a, b]) s.cli.proc.kill('SIGTERM');
    await Promise.all([a.cli.exited, b.cli.exited]);
  });

  it('SIGKILL of the leader mid-workload: the standby takes over within the lease, totals equal ground truth', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'failover' };
    const a = await startSidecar('ql-failover', q.name);
    const b = await startSidecar('ql-failover', q.name);
    const w = workload(bull.queue(q.name));
    startWorker(q.name);
    await w.add(100);
    const leaderOf = async () =>
      (await a.metrics()).get('bullmq_exporter_leader') === 1 ? a : (await b.metrics()).get('bullmq_exporter_leader') === 1 ? b : undefined;
    const leader = await waitFor('a leader', leaderOf);
    const standby = leader === a ? b : a;

    // Keep producing while the leader dies.
    let producing = true;
    const producer = (async () => {
      while (producing) {
        await w.add(20);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    leader.cli.proc.kill('SIGKILL');
    // Takes over once the dead leader's lease expired in Redis (LEASE_S after its last renewal); how long that takes on a
    // busy machine is not what this test is about: that nothing is lost or counted twice across it is.
    await waitFor('the standby to become leader', async () => (await standby.metrics()).get('bullmq_exporter_leader') === 1, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    producing = false;
    await producer;

    const m = await waitFor('every job accounted', async () => {
      const s = await caughtUp(standby, q);
      return s.get(seriesKey('bullmq_jobs_completed_total', labels(q))) === w.truth.completed && s;
    });
    expect(m.get(seriesKey('bullmq_jobs_added_total', labels(q)))).toBe(w.truth.added);
    expect(m.get(seriesKey('bullmq_jobs_failed_total', labels(q)))).toBe(w.truth.failed);
    expect(m.get(seriesKey('bullmq_exporter_events_lost_total', labels(q)))).toBe(0);
    expect(m.get(seriesKey('bullmq_exporter_events_read_total', labels(q)))).toBe(await entriesAdded(q));
    standby.cli.proc.kill('SIGTERM');
    await standby.cli.exited;
  });

  it('entries trimmed while the sidecar was stopped are counted as lost, exactly', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'trimmed' };
    const w = workload(bull.queue(q.name, { streams: { events: { maxLen: 50 } } }));
    startWorker(q.name);
    const first = await startSidecar('ql-trimmed', q.name);
    // Entries written before the reader first took the queue on are (by design) not history it owes: wait for it.
    await waitFor(
      'the reader to take the queue on',
      async () => (await first.metrics()).has(seriesKey('bullmq_exporter_events_read_total', labels(q))),
      20_000,
    );
    await w.add(10);
    const before = await caughtUp(first, q);
    expect(before.get(seriesKey('bullmq_exporter_events_lost_total', labels(q)))).toBe(0);
    first.cli.proc.kill('SIGTERM');
    expect((await first.cli.exited).code).toBe(0);
    const addedAtStop = await entriesAdded(q);

    await w.add(200);
    await waitFor('the jobs to finish', async () => (await raw.zcard(queueKey(q, 'completed'))) + (await raw.zcard(queueKey(q, 'failed'))) === w.truth.added);
    const retained = await raw.xlen(queueKey(q, 'events'));
    const trimmedUnread = (await entriesAdded(q)) - addedAtStop - retained;
    expect(trimmedUnread).toBeGreaterThan(400);

    const second = await startSidecar('ql-trimmed', q.name);
    const after = await caughtUp(second, q);
    expect(after.get(seriesKey('bullmq_exporter_events_lost_total', labels(q)))).toBe(trimmedUnread);
    expect(after.get(seriesKey('bullmq_exporter_events_read_total', labels(q)))).toBe(addedAtStop + retained);
    second.cli.proc.kill('SIGTERM');
    await second.cli.exited;
  });

  it('sharded: replicas share the shard leases, rebalance when one joins and when one is SIGKILLed, totals equal ground truth', async () => {
    const own = 'ql-shards';
    const SHARDS = 4;
    const qs: QueueRef[] = Array.from({ length: 8 }, (_, i) => ({ prefix: 'bull', name: `shard${i}` }));
    const loads = qs.map((q) => workload(bull.queue(q.name)));
    for (const q of qs) startWorker(q.name);
    const addAll = async (n: number) => {
      for (const w of loads) await w.add(n);
    };
    const start = () => startSidecar(own, qs.map((q) => q.name).join(','), ['--events-shards', String(SHARDS)]);
    /** The pid holding each shard's lease (tokens are `<generation>:<host>:<pid>:<uuid>`). */
    const holders = async () => {
      const tokens = await Promise.all(Array.from({ length: SHARDS }, (_, i) => raw.get(ownKeys.leader(own, `${i}-of-${SHARDS}`))));
      return tokens.map((t) => (t ? { gen: t.split(':')[0]!, pid: Number(t.split(':')[2]) } : undefined));
    };
    const held = async (s: Sidecar) => (await holders()).filter((h) => h?.pid === s.cli.proc.pid).length;
    /** Every queue was last claimed by the term that holds its shard now: one reader per queue. */
    const oneReaderPerQueue = async () => {
      const h = await holders();
      for (const q of qs) expect(await raw.hget(ownKeys.eventsQueue(own, q), 'r|gen'), q.name).toBe(h[shardOf(q, SHARDS)]?.gen);
    };

    const a = await start();
    await addAll(20);
    await waitFor('the only replica to hold every shard', async () => (await held(a)) === SHARDS);
    const b = await start();
    await waitFor('a 2/2 split after a replica joined', async () => (await held(a)) === 2 && (await held(b)) === 2, 6 * LEASE_S * 1000);
    await addAll(20);
    await waitFor('the new holders to claim their queues', async () => {
      const h = await holders();
      for (const q of qs) if ((await raw.hget(ownKeys.eventsQueue(own, q), 'r|gen')) !== h[shardOf(q, SHARDS)]?.gen) return false;
      return true;
    });
    await oneReaderPerQueue();

    const c = await start();
    await waitFor('three replicas sharing four shards', async () => (await held(a)) >= 1 && (await held(b)) >= 1 && (await held(c)) >= 1, 6 * LEASE_S * 1000);
    await addAll(20);
    b.cli.proc.kill('SIGKILL');
    await waitFor('the survivors to hold every shard', async () => (await held(a)) + (await held(c)) === SHARDS, 6 * LEASE_S * 1000);
    await addAll(20);

    // Each replica renders what Redis held at its own last collection: wait until both survivors show it all.
    await waitFor(
      'every job accounted on both survivors',
      async () => {
        for (const s of [a, c]) {
          const m = await s.metrics();
          for (const [i, q] of qs.entries()) {
            const read = m.get(seriesKey('bullmq_exporter_events_read_total', labels(q)));
            if (read !== (await entriesAdded(q)) || m.get(seriesKey('bullmq_jobs_completed_total', labels(q))) !== loads[i]!.truth.completed) return false;
          }
        }
        return true;
      },
      20_000,
    );
    await oneReaderPerQueue();
    const m = await c.metrics();
    for (const [i, q] of qs.entries()) {
      const t = loads[i]!.truth;
      expect(m.get(seriesKey('bullmq_jobs_added_total', labels(q))), q.name).toBe(t.added);
      expect(m.get(seriesKey('bullmq_jobs_completed_total', labels(q))), q.name).toBe(t.completed);
      expect(m.get(seriesKey('bullmq_jobs_failed_total', labels(q))), q.name).toBe(t.failed);
      expect(m.get(seriesKey('bullmq_exporter_events_lost_total', labels(q))), q.name).toBe(0);
      expect(m.get(seriesKey('bullmq_exporter_events_read_total', labels(q))), q.name).toBe(await entriesAdded(q));
    }
    for (const s of [a, c]) s.cli.proc.kill('SIGTERM');
    await Promise.all([a.cli.exited, c.cli.exited]);
  }, 45_000);

  it('a queue created after the sidecar started, found by discovery, is counted from its first job', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'late' };
    // No queue exists yet: the leader has nothing to follow, but its install time is what decides where
    // a later stream starts.
    const s = await startSidecarProcess({ redisUrl: redis.url, ownPrefix: 'ql-late' });
    sidecars.push(s);
    await waitFor('a leader', async () => (await s.metrics()).get('bullmq_exporter_leader') === 1);
    await new Promise((r) => setTimeout(r, 1000));
    const w = workload(bull.queue(q.name));
    await w.add(100);
    startWorker(q.name);
    const m = await waitFor('every job counted', async () => {
      const x = await caughtUpIn(s, raw, q);
      return metric(x, 'bullmq_jobs_completed_total', q) === w.truth.completed && x;
    });
    expect(metric(m, 'bullmq_jobs_added_total', q)).toBe(w.truth.added);
    expect(metric(m, 'bullmq_jobs_failed_total', q)).toBe(w.truth.failed);
    await s.stop();
  });

  // Last: it freezes the shared Redis.
  it('SIGTERM while Redis hangs (SIGSTOPped): the leader still exits 0 within 5 s', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'hung' };
    // The default lease: its renewals and the reader's commands are the ones that used to wait forever.
    const s = await startSidecar('ql-hung', q.name, [], 10);
    const w = workload(bull.queue(q.name));
    await w.add(20);
    await waitFor('leader', async () => (await s.metrics()).get('bullmq_exporter_leader') === 1);
    await caughtUp(s, q);
    redis.pause();
    try {
      // Let the reader's next lease renewal and the collection get stuck on the frozen server.
      await new Promise((r) => setTimeout(r, 1500));
      s.cli.proc.kill('SIGTERM');
      const { code } = await s.cli.exited;
      // Within 5 s on the sidecar's own clock: past its shutdown deadline it logs 'deadline passed' and exits 1.
      expect(code).toBe(0);
      expect(s.cli.output()).not.toMatch(/unhandled|deadline passed/i);
    } finally {
      redis.resume();
    }
  }, 30_000);
});
