// The floor of issue 16's "Redis time with traffic ≤ B": what reading every event once costs Redis, against what B
// (BullMQ's getJobCounts() of every queue, all at once) costs, both measured in one run on one private redis-server.
//   1. Traffic: real BullMQ on the with-traffic layout (bench/lib/seed.ts, 1,000 queues; one Worker of concurrency 1
//      per active queue, RATE jobs/s round-robin over them) for TRAFFIC_S, then stopped: the events streams hold what
//      BullMQ writes per job (entries per job = entries added over jobs added).
//   2. With nothing else running: XREAD of those entries from the start (COUNT large enough for one call), and the same
//      XREAD at each stream's end (nothing returned), REPS times each, alternating; Redis's own time per call
//      (INFO commandstats usec). Per entry = (full - empty) / entries.
//   3. B's pass: getJobCounts() of every queue at once, REPS times; EVALSHA usec per queue.
// The events floor at RATE jobs/s per 15 s = RATE × 15 × entries per job × µs per entry: no exact follower of the
// events can spend less, whatever it does between reads. Writes its section of docs/benchmarks.md.
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startTestRedis } from '../test/helpers/redis-server.js';
import { commandStats } from './lib/redis-cost.js';
import { loadAverage, machineInfo, median, table, writeSection } from './lib/report.js';
import { queueName, seedQueues } from './lib/seed.js';

const SIZE = 1000;
const RATE = 120;
const TRAFFIC_S = Number(process.env['BENCH_TRAFFIC_S'] ?? 20);
const REPS = 15;
const PREFIX = 'floor';
const STATES = ['waiting', 'prioritized', 'delayed', 'active', 'waiting-children', 'completed', 'failed'] as const;
const active = (i: number) => i % 10 === 5;

/** Redis time per call of `command` while `run` runs (it must send only that command of that kind). */
async function timed(admin: Redis, command: string, run: () => Promise<unknown>): Promise<number> {
  const a = (await commandStats(admin)).get(command) ?? { calls: 0, usec: 0 };
  await run();
  const b = (await commandStats(admin)).get(command) ?? { calls: 0, usec: 0 };
  if (b.calls === a.calls) throw new Error(`no ${command} was counted`);
  return (b.usec - a.usec) / (b.calls - a.calls);
}

const loadAtStart = loadAverage();
const startedAt = Date.now();
const server = await startTestRedis();
const admin = new Redis(server.url, { maxRetriesPerRequest: null });
try {
  await seedQueues(admin, PREFIX, SIZE, Date.now());
  const names = Array.from({ length: SIZE }, (_, i) => i)
    .filter(active)
    .map(queueName);
  const idsBefore = await Promise.all(names.map((n) => admin.get(`${PREFIX}:${n}:id`)));

  // 1. Traffic.
  const producer = names.map((n) => new Queue(n, { connection: admin, prefix: PREFIX, skipMetasUpdate: true }));
  const workers = names.map((n) => new Worker(n, async () => undefined, { connection: { url: server.url }, prefix: PREFIX, concurrency: 1 }));
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  let next = 0;
  let owed = 0;
  const tick = setInterval(() => {
    owed += RATE / 20;
    for (; owed >= 1; owed -= 1) void producer[next++ % producer.length]!.add('t', { at: Date.now() }, { removeOnComplete: 1000, removeOnFail: 1000 });
  }, 50);
  await new Promise((r) => setTimeout(r, TRAFFIC_S * 1000));
  clearInterval(tick);
  // Until every job added is done: the streams then hold each job's whole life.
  while ((await Promise.all(names.map((n) => admin.llen(`${PREFIX}:${n}:wait`)))).some((n) => n > 0)) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 1000));
  await Promise.all(workers.map((w) => w.close()));
  const idsAfter = await Promise.all(names.map((n) => admin.get(`${PREFIX}:${n}:id`)));
  const jobs = idsAfter.reduce((s, v, i) => s + Number(v) - Number(idsBefore[i]), 0);
  const streams = names.map((n) => `${PREFIX}:${n}:events`);
  const lengths = await Promise.all(streams.map((s) => admin.xlen(s)));
  const entries = lengths.reduce((a, b) => a + b, 0);
  const lastIds = await Promise.all(streams.map(async (s) => ((await admin.xrevrange(s, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0') as string));
  const maxLen = Math.max(...lengths);

  // 2. XREAD of every entry, and of nothing, alternating.
  const full: number[] = [];
  const empty: number[] = [];
  for (let k = 0; k < REPS; k += 1) {
    full.push(await timed(admin, 'xread', () => admin.call('XREAD', 'COUNT', String(maxLen), 'STREAMS', ...streams, ...streams.map(() => '0-0'))));
    empty.push(await timed(admin, 'xread', () => admin.call('XREAD', 'COUNT', String(maxLen), 'STREAMS', ...streams, ...lastIds)));
  }
  const perEntry = (median(full) - median(empty)) / entries;
  const perStream = median(empty) / streams.length;

  // 3. B's pass over every queue.
  const queues = Array.from({ length: SIZE }, (_, i) => new Queue(queueName(i), { connection: admin, prefix: PREFIX, skipMetasUpdate: true }));
  await Promise.all(queues.map((q) => q.getJobCounts(...STATES)));
  const passes: number[] = [];
  for (let k = 0; k < REPS; k += 1) passes.push(await timed(admin, 'evalsha', () => Promise.all(queues.map((q) => q.getJobCounts(...STATES)))));
  const perQueue = median(passes);

  const perJob = entries / jobs;
  const floor15 = (RATE * 15 * perJob * perEntry) / 1000;
  const b15 = (n: number) => (n * perQueue) / 1000;
  const breakEven = (n: number) => (n * perQueue) / (15 * perJob * perEntry);
  const f = (x: number, d = 2) => x.toFixed(d);
  const body = [
    machineInfo(loadAtStart),
    '',
    `\`npm run bench:floor\`. ${jobs} jobs through ${names.length} of ${SIZE} queues (the with-traffic layout) in ${TRAFFIC_S} s, then every`,
    `measure on a quiet private redis-server, ${REPS} repetitions each (median); Redis's own time from INFO commandstats.`,
    '',
    table(
      ['entries per job', 'XREAD µs per entry', 'XREAD µs per stream named (nothing returned)', 'B µs per queue (getJobCounts, all at once)'],
      [[f(perJob), f(perEntry), f(perStream), f(perQueue, 1)]],
    ),
    '',
    table(
      ['per 15 s', `reading every event once at ${RATE} jobs/s (the floor)`, 'B', 'floor / B', 'jobs/s at which the floor alone equals B'],
      [1000, 10_000].map((n) => [`${n} queues`, `${f(floor15)} ms`, `${f(b15(n))} ms`, f(floor15 / b15(n)), f(breakEven(n), 0)]),
    ),
    '',
    `B at 10,000 queues is B's per-queue time × 10,000. Run time: ${Math.round((Date.now() - startedAt) / 1000)} s.`,
  ].join('\n');
  writeSection(new URL('../../docs/benchmarks.md', import.meta.url), '## The floor of an exact event follower against B (issue 16)', body);
  console.log(body);
  await Promise.all(producer.map((q) => q.close()));
  await Promise.all(queues.map((q) => q.close()));
} finally {
  await admin.quit();
  await server.stop();
}
