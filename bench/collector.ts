// Benchmark of issue 2's sidecar core: collection cost of queuelens's Collector against the baseline most
// exporters use (BullMQ getJobCounts() per queue, one after another) at 10 to 10,000 queues, the slowest Redis
// command, and the real `queuelens sidecar` process at 1,000 queues (RSS, /metrics under 50 concurrent scrapers).
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Collector } from '../src/collector/collector.js';
import { QueueDiscovery } from '../src/collector/discovery.js';
import { JOB_STATES, type CollectionSnapshot } from '../src/domain/queue-snapshot.js';
import { createLogger } from '../src/log/logger.js';
import { createRedis } from '../src/redis/connection.js';
import { RedisQueueStateSource } from '../src/redis/queue-state-source.js';
import { startTestRedis, type TestRedis } from '../test/helpers/redis-server.js';
import { describe, RedisStats, slowest, SLOWLOG_THRESHOLD_US, type LoggedCommand, type RunCost } from './lib/redis-stats.js';
import { loadAverage, machineInfo, median, table, writeSection } from './lib/report.js';
import { seedQueues, type SeededQueue } from './lib/seed.js';
import type { BurstResult } from './lib/scrapers.js';
import { measureSidecar, type LoadResult, type SidecarResult } from './lib/sidecar-process.js';

const SIZES = [10, 100, 1_000, 10_000];
const SIDECAR_SIZE = 1_000;
const WARMUP = 2;
const ROUNDS = 11;
const ADMIN_NAME = 'bench-admin';
const REPLAY_NAME = 'bench-replay';
const REPLAYS = 5;
const SECTION = '## Sidecar collector (issue 2)';
const LOAD_AT_START = loadAverage();

const TARGETS = {
  wallMs1000: 50,
  speedup: 4,
  /** Per-queue cost at a size may be at most this many times the per-queue cost at the size below it. */
  linearSlack: 1.5,
  slowestUs: 1000,
  rssMb: 120,
  p99Ms: 25,
};

interface Sample {
  wallMs: number;
  /** CPU time of this process (the client side) during the run. */
  clientCpuUsec: number;
  cost: RunCost;
}

interface SizeResult {
  size: number;
  collector: Sample[];
  baseline: Sample[];
  /** Each command of one collection, at its fastest over REPLAYS repeats. */
  replayed: LoggedCommand[];
}

const prefixOf = (size: number) => `bench${size}`;
const log = createLogger({ level: 'warn', name: 'bench' });

async function timed(stats: RedisStats, run: () => Promise<unknown>): Promise<Sample> {
  await stats.reset();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await run();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wallMs, clientCpuUsec: cpu.user + cpu.system, cost: await stats.read() };
}

/** Every queue of the collection must hold exactly what was seeded; a benchmark of wrong numbers is worthless. */
function checkSnapshot(s: CollectionSnapshot, truth: SeededQueue[], startedAt: number): void {
  if (!s.ok) throw new Error(`collection failed: ${s.error}`);
  if (s.queues.length !== truth.length) throw new Error(`collected ${s.queues.length} queues, seeded ${truth.length}`);
  const ageOk = (age: number, sinceMs: number) => age >= (startedAt - sinceMs) / 1000 - 1 && age <= (s.finishedAt - sinceMs) / 1000 + 1;
  s.queues.forEach((q, i) => {
    const t = truth[i]!;
    const bad: string[] = [];
    if (q.ref.name !== t.ref.name) bad.push(`name ${q.ref.name}`);
    for (const st of JOB_STATES) if (q.jobs[st] !== t.jobs[st]) bad.push(`${st} ${q.jobs[st]} != ${t.jobs[st]}`);
    if (q.paused !== t.paused) bad.push('paused');
    if (q.delayedOverdue !== t.delayedOverdue) bad.push('delayedOverdue');
    if (q.orphanedActive !== t.orphanedActive) bad.push('orphanedActive');
    if (!ageOk(q.oldestWaitingAgeSeconds, t.headEligibleMs)) bad.push(`oldestWaitingAge ${q.oldestWaitingAgeSeconds}`);
    if (!ageOk(q.oldestActiveAgeSeconds, t.oldestActiveStartMs)) bad.push(`oldestActiveAge ${q.oldestActiveAgeSeconds}`);
    if (bad.length > 0) throw new Error(`queue ${t.ref.prefix}:${t.ref.name} collected wrong: ${bad.join(', ')}`);
  });
}

/** BullMQ's own reading of the seeded keys must match the seeded truth (this also validates the seeding). */
function checkCounts(counts: Array<Record<string, number>>, truth: SeededQueue[]): void {
  counts.forEach((c, i) => {
    const t = truth[i]!;
    for (const st of JOB_STATES) {
      const key = st === 'waiting_children' ? 'waiting-children' : st;
      if (c[key] !== t.jobs[st]) throw new Error(`BullMQ getJobCounts() of ${t.ref.name}: ${key} ${c[key]} != seeded ${t.jobs[st]}`);
    }
  });
}

interface Contender {
  size: number;
  truth: SeededQueue[];
  collect: () => Promise<CollectionSnapshot>;
  baseline: () => Promise<Array<Record<string, number>>>;
  close: () => Promise<void>;
}

async function prepare(server: TestRedis, size: number, truth: SeededQueue[]): Promise<Contender> {
  const prefix = prefixOf(size);
  const redis = createRedis({ url: server.url, name: 'queuelens:sidecar', log, lazyConnect: true, commandTimeoutMs: 60_000 });
  await redis.connect();
  const discovery = new QueueDiscovery({ redis, prefixes: [prefix], maxQueues: 1_000_000, log });
  await discovery.runPass();
  const collector = new Collector({ source: new RedisQueueStateSource({ redis, log }), discovery, log });

  // The baseline shares one connection, as an exporter would; Queue construction is not timed.
  const shared = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null, connectionName: 'baseline' });
  const queues = truth.map((t) => new Queue(t.ref.name, { connection: shared, prefix, skipMetasUpdate: true }));
  await Promise.all(queues.map((q) => q.waitUntilReady()));
  return {
    size,
    truth,
    collect: () => collector.collect(),
    async baseline() {
      const out: Array<Record<string, number>> = [];
      for (const q of queues) out.push(await q.getJobCounts());
      return out;
    },
    async close() {
      await Promise.all(queues.map((q) => q.close()));
      shared.disconnect();
      redis.disconnect();
    },
  };
}

async function measureAll(server: TestRedis, stats: RedisStats, replay: Redis, truth: Map<number, SeededQueue[]>): Promise<SizeResult[]> {
  const contenders: Contender[] = [];
  for (const size of SIZES) contenders.push(await prepare(server, size, truth.get(size)!));
  for (const c of contenders) {
    for (let i = 0; i < WARMUP; i += 1) {
      const startedAt = Date.now();
      checkSnapshot(await c.collect(), c.truth, startedAt);
      checkCounts(await c.baseline(), c.truth);
    }
  }
  const results = contenders.map((c): SizeResult => ({ size: c.size, collector: [], baseline: [], replayed: [] }));
  // Round after round over every size, collector and baseline back to back, so the load that other
  // processes put on this shared machine spreads over all sizes and both sides alike.
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const [i, c] of contenders.entries()) {
      results[i]!.collector.push(await timed(stats, c.collect));
      results[i]!.baseline.push(await timed(stats, c.baseline));
    }
    process.stdout.write(`round ${round + 1}/${ROUNDS}\r`);
  }
  for (const [i, c] of contenders.entries()) {
    const one = await timed(stats, c.collect);
    results[i]!.replayed = await stats.replayMin(replay, REPLAY_NAME, one.cost.logged, REPLAYS);
    await c.close();
  }
  return results;
}

const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const us = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const n = (x: number) => x.toLocaleString('en-US');

interface Row {
  size: number;
  cWall: number;
  bWall: number;
  cRedis: number;
  bRedis: number;
  cCpu: number;
  bCpu: number;
  cCalls: number;
  bCalls: number;
  cClientCpu: number;
  bClientCpu: number;
  /** Collector's top-level commands over all timed runs (those ≥ the SLOWLOG threshold). */
  cLogged: number[];
  cOver1ms: number;
  cSlowest?: LoggedCommand;
  bSlowest?: LoggedCommand;
  cReplayedSlowest?: LoggedCommand;
}

function summarize(r: SizeResult): Row {
  const med = (xs: Sample[], f: (s: Sample) => number) => median(xs.map(f));
  const logged = (xs: Sample[]) => xs.flatMap((s) => s.cost.logged);
  const cLogged = logged(r.collector).map((c) => c.usec);
  return {
    size: r.size,
    cWall: med(r.collector, (s) => s.wallMs),
    bWall: med(r.baseline, (s) => s.wallMs),
    cRedis: med(r.collector, (s) => s.cost.commandUsec),
    bRedis: med(r.baseline, (s) => s.cost.commandUsec),
    cCpu: med(r.collector, (s) => s.cost.cpuUsec),
    bCpu: med(r.baseline, (s) => s.cost.cpuUsec),
    cCalls: med(r.collector, (s) => s.cost.calls),
    bCalls: med(r.baseline, (s) => s.cost.calls),
    cClientCpu: med(r.collector, (s) => s.clientCpuUsec),
    bClientCpu: med(r.baseline, (s) => s.clientCpuUsec),
    cLogged,
    cOver1ms: cLogged.filter((u) => u > TARGETS.slowestUs).length,
    cSlowest: slowest(logged(r.collector)),
    bSlowest: slowest(logged(r.baseline)),
    cReplayedSlowest: slowest(r.replayed),
  };
}

const cmdCell = (c: LoggedCommand | undefined) => (c ? `${c.usec} µs ${describe(c.args)}` : `< ${SLOWLOG_THRESHOLD_US} µs`);
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil(xs.length * 0.99) - 1)] ?? 0;
const loadCell = (l: LoadResult) =>
  `${l.p50} / ${l.p90} / ${l.p99} / ${l.max} ms; ${n(l.requests)} requests, ${l.rps.toFixed(0)}/s, ${l.non2xx} non-2xx, ${l.errors} errors; server CPU ${l.serverCpuMsPerRequest.toFixed(3)} ms per request`;

function render(rows: Row[], sidecar: SidecarResult, verdicts: Array<[string, boolean, string]>, seedNote: string): string {
  const main = table(
    [
      'queues',
      'runs',
      'collector wall (ms)',
      'baseline wall (ms)',
      'speed-up',
      'collector Redis cmd (ms)',
      'baseline Redis cmd (ms)',
      'collector Redis CPU (ms)',
      'baseline Redis CPU (ms)',
      'collector client CPU (ms)',
      'baseline client CPU (ms)',
      'top-level calls (collector / baseline)',
    ],
    rows.map((r) => [
      n(r.size),
      ROUNDS,
      ms(r.cWall),
      ms(r.bWall),
      `${(r.bWall / r.cWall).toFixed(1)}×`,
      ms(r.cRedis / 1000),
      ms(r.bRedis / 1000),
      ms(r.cCpu / 1000),
      ms(r.bCpu / 1000),
      ms(r.cClientCpu / 1000),
      ms(r.bClientCpu / 1000),
      `${r.cCalls} / ${r.bCalls}`,
    ]),
  );
  const perQueue = table(
    [
      'queues',
      'collector wall / queue (µs)',
      'baseline wall / queue (µs)',
      'collector Redis cmd / queue (µs)',
      'baseline Redis cmd / queue (µs)',
      'collector CPU / queue, Redis + client (µs)',
      'baseline CPU / queue, Redis + client (µs)',
    ],
    rows.map((r) => [
      n(r.size),
      us((r.cWall * 1000) / r.size),
      us((r.bWall * 1000) / r.size),
      us(r.cRedis / r.size),
      us(r.bRedis / r.size),
      us((r.cCpu + r.cClientCpu) / r.size),
      us((r.bCpu + r.bClientCpu) / r.size),
    ]),
  );
  const slow = table(
    [
      'queues',
      'collector: slowest command, fastest of ' + REPLAYS + ' replays',
      'collector: p99 of its commands in the timed runs',
      'collector: slowest in the timed runs',
      'collector: commands over 1 ms / all',
      'baseline: slowest in the timed runs',
    ],
    rows.map((r) => [
      n(r.size),
      cmdCell(r.cReplayedSlowest),
      `${p99(r.cLogged)} µs`,
      cmdCell(r.cSlowest),
      `${r.cOver1ms} / ${r.cLogged.length}`,
      cmdCell(r.bSlowest),
    ]),
  );
  const s = sidecar;
  const rssCell = (r: SidecarResult['rss']['deployed']) => `${r.lastMb.toFixed(1)} (max ${r.maxMb.toFixed(1)})`;
  const leanCell = (l: BurstResult) => `${l.p50} / ${l.p90} / ${l.p99} / ${l.max} ms; ${n(l.requests)} requests, ${l.errors} errors`;
  const proc = table(
    ['measure', 'sidecar', 'floor: a bare node:http server answering the same bytes'],
    [
      ['queues exported', n(s.queues), ''],
      ['collect duration inside the sidecar (ms)', ms(s.collectDurationMs), ''],
      [
        `RSS as deployed (NODE_OPTIONS=\`${s.rss.deployed.nodeOptions}\` from deploy/k8s/base/sidecar.yaml), MB: last of ${s.rssWindowS} one-second samples after ${s.rss.deployed.collectionsBefore} collections (max)`,
        rssCell(s.rss.deployed),
        '',
      ],
      [`RSS with node's defaults (no NODE_OPTIONS), MB, the same way`, rssCell(s.rss.defaults), ''],
      ['/metrics body (bytes): Prometheus text, gzip', `${n(s.bodyBytes)}, ${n(s.gzipBytes)}`, ''],
      [
        `**${s.connections} scrapers, each ${s.pacedRate} scrapes/s, all at once, gzip; lean client, ${s.durationS} s: latency p50 / p90 / p99 / max**`,
        leanCell(s.lean.sidecar),
        leanCell(s.lean.floor),
      ],
      [`the same shape with autocannon (${s.pacedRate} requests/s per connection)`, loadCell(s.paced.sidecar), loadCell(s.paced.floor)],
      [
        `autocannon, ${s.connections} connections in a closed loop (next request as soon as the last is answered), gzip, ${s.durationS} s`,
        loadCell(s.gzip.sidecar),
        loadCell(s.gzip.floor),
      ],
      [`autocannon, ${s.connections} connections in a closed loop, no compression, ${s.durationS} s`, loadCell(s.identity), ''],
      ['RSS after the load (MB), peak RSS (MB)', `${s.rssAfterMb.toFixed(1)}, ${s.peakRssMb.toFixed(1)}`, ''],
    ],
  );
  return [
    'Run with `npm run bench:collector` (bench/collector.ts). One run on this machine:',
    '',
    machineInfo(LOAD_AT_START),
    '',
    seedNote,
    '',
    `**Collection**: median of ${ROUNDS} runs after ${WARMUP} warm-up runs; the runs go round by round over every size, collector and baseline back to back, so load from other processes on this shared machine spreads over all of them.`,
    'Collector = queuelens `Collector.collect()` (grouped read-only Lua calls plus CLIENT LIST, as in the sidecar).',
    'Baseline = BullMQ `Queue.getJobCounts()` for each queue, awaited one after another, `Queue` objects built beforehand with `skipMetasUpdate: true` on one shared connection.',
    '"Redis cmd" = server time of the top-level commands from `INFO commandstats` (EVALSHA/EVAL/CLIENT LIST; commands run inside a script are part of its time), reset before every run.',
    '"Redis CPU" = `used_cpu_user + used_cpu_sys` of the Redis process over the run (adds protocol parsing and networking); "client CPU" = CPU time of the bench process over the run (`process.cpuUsage()`). CPU times do not grow when other processes take the CPU away, wall times do.',
    '',
    main,
    '',
    'Per-queue cost (linearity):',
    '',
    perQueue,
    '',
    `Slowest single command in Redis time, from SLOWLOG (threshold ${SLOWLOG_THRESHOLD_US} µs, reset before every run). A duration in SLOWLOG is wall time inside Redis, so it also counts any moment the OS gave the CPU to another process; on this shared 2-CPU machine the single maximum of thousands of calls measures that (the baseline's 8-command script shows the same spikes). The first column is the command's own cost: every command of one collection sent again ${REPLAYS} times and its fastest run kept; the target is judged on it.`,
    '',
    slow,
    '',
    `**The sidecar process** (\`node dist/cli/index.js sidecar\`, collect interval ${s.collectInterval} s) against ${n(s.queues)} seeded queues. The load comes from the bench process on the same 2 CPUs; every load also runs, right after, against the floor: a bare \`node:http\` server in its own process answering every request with the sidecar's gzipped body, which shows what the client and the machine add by themselves.`,
    '',
    proc,
    '',
    `The lean client (bench/lib/scrapers.ts) writes each request on a raw keep-alive socket and only reads the status line, Content-Length and the byte count, so the latency it reports is the server's. autocannon parses every answer with a JavaScript HTTP parser; with 50 answers of ${n(s.gzipBytes)} bytes arriving at once it is the slowest part of the loop, and its p99 against the floor, a server that does no work at all, is ${s.paced.floor.p99} ms. The target is judged with the lean client; autocannon's numbers are kept next to their floor. In a burst all 50 scrapers fire in the same instant, so the last answer waits for the 49 before it: at ${s.gzip.sidecar.serverCpuMsPerRequest.toFixed(2)} ms of sidecar CPU per gzip scrape that is ~${(50 * s.gzip.sidecar.serverCpuMsPerRequest).toFixed(0)} ms of server work per burst (load average at the end of this run: ${loadAverage()}).`,
    '',
    '**Targets**:',
    '',
    table(
      ['target', 'result', 'measured'],
      verdicts.map(([t, ok, m]) => [t, ok ? 'PASS' : 'FAIL', m]),
    ),
  ].join('\n');
}

function judge(rows: Row[], s: SidecarResult): Array<[string, boolean, string]> {
  const r1k = rows.find((r) => r.size === 1_000)!;
  // Cost = CPU time on both sides (Redis + client): unlike wall time, it does not stretch when other
  // processes on this shared machine take the CPU away, which long runs (10,000 queues) suffer most.
  const cost = (r: Row) => (r.cCpu + r.cClientCpu) / r.size;
  const linear = rows.slice(1).map((r, i) => {
    const prev = rows[i]!;
    const ratio = cost(r) / cost(prev);
    const wall = r.cWall / r.size / (prev.cWall / prev.size);
    return { label: `${n(prev.size)}→${n(r.size)}`, ratio, wall, ok: ratio <= TARGETS.linearSlack };
  });
  const worst = slowest(rows.flatMap((r) => (r.cReplayedSlowest ? [r.cReplayedSlowest] : [])));
  const rawWorst = slowest(rows.flatMap((r) => (r.cSlowest ? [r.cSlowest] : [])));
  return [
    [`1,000 queues collected in ≤ ${TARGETS.wallMs1000} ms (wall median)`, r1k.cWall <= TARGETS.wallMs1000, `${ms(r1k.cWall)} ms`],
    [
      `≥ ${TARGETS.speedup}× faster than the baseline at 1,000 queues (wall median)`,
      r1k.bWall / r1k.cWall >= TARGETS.speedup,
      `${(r1k.bWall / r1k.cWall).toFixed(1)}× (${ms(r1k.bWall)} / ${ms(r1k.cWall)} ms)`,
    ],
    [
      `cost linear in queues (CPU per queue, Redis + client, at each size ≤ ${TARGETS.linearSlack}× the size below)`,
      linear.every((l) => l.ok),
      `per queue: ${rows.map((r) => `${us(cost(r))} µs`).join(', ')}; ratios ${linear.map((l) => `${l.label} ×${l.ratio.toFixed(2)}`).join(', ')} (wall per queue: ${linear.map((l) => `×${l.wall.toFixed(2)}`).join(', ')})`,
    ],
    [
      `no collector command over ${TARGETS.slowestUs / 1000} ms of Redis time (any size)`,
      (worst?.usec ?? 0) <= TARGETS.slowestUs,
      `${cmdCell(worst)} (own cost); ${cmdCell(rawWorst)} the single slowest in the timed runs, ${rows.reduce((a, r) => a + r.cOver1ms, 0)} of ${n(rows.reduce((a, r) => a + r.cLogged.length, 0))} calls over 1 ms`,
    ],
    [
      `sidecar RSS ≤ ${TARGETS.rssMb} MB with 1,000 queues, as deployed (the highest of ${s.rssWindowS} one-second samples after a few collections)`,
      s.rss.deployed.maxMb <= TARGETS.rssMb,
      `${s.rss.deployed.maxMb.toFixed(1)} MB with NODE_OPTIONS=${s.rss.deployed.nodeOptions} (node's defaults: ${s.rss.defaults.maxMb.toFixed(1)} MB; after the load runs: ${s.rssAfterMb.toFixed(1)} MB, peak ${s.peakRssMb.toFixed(1)} MB)`,
    ],
    [
      `/metrics p99 ≤ ${TARGETS.p99Ms} ms, 50 concurrent scrapers (each ${s.pacedRate} scrapes/s, gzip as Prometheus), 1,000 queues`,
      s.lean.sidecar.p99 <= TARGETS.p99Ms && s.lean.sidecar.errors === 0,
      `${s.lean.sidecar.p99} ms (floor ${s.lean.floor.p99} ms); with autocannon ${s.paced.sidecar.p99} ms against its floor of ${s.paced.floor.p99} ms`,
    ],
    [
      `(stress, autocannon) 50 connections in a closed loop, gzip: p99 within ${TARGETS.p99Ms} ms of the floor`,
      s.gzip.sidecar.p99 - s.gzip.floor.p99 <= TARGETS.p99Ms && s.gzip.sidecar.non2xx === 0 && s.gzip.sidecar.errors === 0,
      `${s.gzip.sidecar.p99} ms at ${s.gzip.sidecar.rps.toFixed(0)} requests/s, floor ${s.gzip.floor.p99} ms at ${s.gzip.floor.rps.toFixed(0)}/s (without compression: ${s.identity.p99} ms at ${s.identity.rps.toFixed(0)}/s)`,
    ],
  ];
}

async function main(): Promise<void> {
  const server = await startTestRedis();
  try {
    const admin = new Redis({ host: '127.0.0.1', port: server.port, connectionName: ADMIN_NAME });
    const stats = new RedisStats(admin, ADMIN_NAME);
    const replay = new Redis({ host: '127.0.0.1', port: server.port, connectionName: REPLAY_NAME });
    await stats.configure();

    const seeder = server.client();
    const now = Date.now();
    const truth = new Map<number, SeededQueue[]>();
    const t0 = performance.now();
    for (const size of SIZES) truth.set(size, await seedQueues(seeder, prefixOf(size), size, now));
    const keys = await seeder.dbsize();
    const seedNote = `Seeded ${SIZES.map((n) => n.toLocaleString('en-US')).join(' + ')} queues (${keys.toLocaleString('en-US')} keys, all in one Redis) in ${((performance.now() - t0) / 1000).toFixed(1)} s. Each queue: 4 waiting, 2 prioritized, 3 delayed (1 overdue), 3 completed, 2 failed, 1 active with a live lock; every 10th queue one more active job with an expired lock, every 50th queue paused. Before timing, every queue's collected state and BullMQ's own \`getJobCounts()\` were checked against the seeded numbers.`;
    console.log(seedNote);

    const rows = (await measureAll(server, stats, replay, truth)).map(summarize);
    for (const r of rows) {
      console.log(
        `${r.size} queues: collector ${ms(r.cWall)} ms (Redis ${ms(r.cRedis / 1000)} ms, slowest ${cmdCell(r.cReplayedSlowest)} own cost, ${cmdCell(r.cSlowest)} in runs), baseline ${ms(r.bWall)} ms (Redis ${ms(r.bRedis / 1000)} ms)`,
      );
    }
    const sidecar = await measureSidecar({ redisUrl: server.url, prefix: prefixOf(SIDECAR_SIZE), queues: SIDECAR_SIZE });
    console.log(
      `sidecar: /metrics p99 ${sidecar.lean.sidecar.p99} ms lean (floor ${sidecar.lean.floor.p99}), autocannon ${sidecar.paced.sidecar.p99} ms paced (floor ${sidecar.paced.floor.p99}), ${sidecar.gzip.sidecar.p99} ms closed loop gzip (floor ${sidecar.gzip.floor.p99}), ${sidecar.identity.p99} ms identity`,
    );

    const verdicts = judge(rows, sidecar);
    for (const [t, ok, m] of verdicts) console.log(`${ok ? 'PASS' : 'FAIL'}  ${t}: ${m}`);
    writeSection(new URL('../../docs/benchmarks.md', import.meta.url), SECTION, render(rows, sidecar, verdicts, seedNote));
    console.log('written to docs/benchmarks.md');
    admin.disconnect();
    replay.disconnect();
  } finally {
    await server.stop();
  }
}

await main();
