// Benchmark of issue 16 with traffic: 10% of the queues active (a BullMQ Worker each, a producer adding RATE jobs/s
// over them, in a child process), at 1,000 queues (BENCH_SIZES=1000,10000 for more), in one run:
//   floor       the traffic alone
//   A, B        BullMQ getJobCounts() of every queue once per window, sequential (A) and all at once (B)
//   after       the real `queuelens sidecar` with its defaults (freshness of busy queues paced by demand)
//   baseline    another build's sidecar (BENCH_BASELINE_CLI), e.g. the code before a change
//   before      BENCH_BEFORE=1: this build with --collect-sweep 0 (every queue read at every collection)
// Each sidecar is asked for its data as Prometheus would (/metrics every 15 s), then by a 1 s poller, then by the
// visibility probes (a job added to an idle queue, /metrics polled every POLL_MS until its depth and its added
// counter move); for the first two, the Redis CPU of a window net of the floor and the command time of the
// sidecar's own connections (SLOWLOG) in a window of its own, asked for the same way. Also the sidecar's RSS
// (sampled each second) and peak (VmHWM). Writes its section of docs/benchmarks.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { TestRedis } from '../test/helpers/redis-server.js';
import { eachSize, gauge, scrapeUntil, startSidecarProcess, window, WINDOW_S, type Cost } from './lib/redis-cost.js';
import { loadAverage, machineInfo, median, table, writeSection } from './lib/report.js';
import { queueName, seedQueues } from './lib/seed.js';
import { commandTime, nameScripts, type CommandTime } from './lib/command-time.js';
import { pathToFileURL } from 'node:url';
import { describe } from './lib/redis-stats.js';

const SIZES = (process.env['BENCH_SIZES'] ?? '1000').split(',').map(Number);
const RATE = 120;
const POLL_MS = 50;
/** Prometheus's scrape interval, and the 1 s poller's. */
const SCRAPE_MS = 15_000;
const POLLER_MS = 1000;
/** Scraped this long before the windows (two scrapes: the pacing has seen the gap between them). */
const SETTLE_MS = 35_000;
const POLLER_SETTLE_MS = 6000;
/**
 * The scraped windows last this long (four scrapes), scaled to WINDOW_S: one discovery pass (every 60 s; with traffic
 * each is a SCAN of the keyspace) falls in each, as in every minute of a deployment.
 */
const SCRAPED_S = 60;
/** BENCH_BEFORE=1: also this build with --collect-sweep 0 (every queue at every collection). */
const BEFORE = process.env['BENCH_BEFORE'] === '1';
const CLI = new URL('../../dist/cli/index.js', import.meta.url).pathname;
const CHILD = new URL('./lib/traffic-child.js', import.meta.url).pathname;
/** BENCH_BASELINE_CLI: another build's dist/cli/index.js, run with its defaults as one more column. */
const BASELINE_CLI = process.env['BENCH_BASELINE_CLI'];
/** The sizes at which the baseline build runs too (BENCH_BASELINE_SIZES, default 1000). */
const BASELINE_SIZES = (process.env['BENCH_BASELINE_SIZES'] ?? '1000').split(',').map(Number);
if (BASELINE_CLI) {
  // Its scripts by name in the split (they differ from this build's where it changed them).
  const embedded = new URL('../redis/lua-embedded.js', pathToFileURL(BASELINE_CLI)).href;
  nameScripts(((await import(embedded)) as { LUA_SOURCES: Record<string, string> }).LUA_SOURCES, ' (baseline)');
}

/** The sidecar's Redis cost in one way of asking for its data: used_cpu and commandstats, then its own commands. */
interface Asked {
  cost: Cost & { jobs: number };
  /** The sidecar's own commands (by client name) in a window of their own right after, asked for the same way. */
  time: CommandTime;
}

interface Variant {
  /** /metrics scraped every SCRAPE_MS, as Prometheus (and B) would. */
  scraped: Asked;
  /** /metrics polled every POLLER_MS. */
  polled: Asked;
  /** The visibility window: probes polling every POLL_MS. */
  cost: Cost & { jobs: number };
  depthP50: number;
  depthMax: number;
  counterP50: number;
  probes: number;
  rssMb: number;
  peakMb: number;
  /** Median bullmq_exporter_cycle_duration_seconds seen by the probes. */
  cycleS: number;
  /** Its commands of at least 1 ms (SLOWLOG) during the visibility window. */
  slow: Array<{ usec: number; command: string }>;
}

interface Row {
  size: number;
  floor: Cost & { jobs: number };
  a: Cost & { jobs: number };
  b: Cost & { jobs: number };
  /** One pass of A and of B (one window's work), every command logged. */
  aTime: CommandTime;
  bTime: CommandTime;
  variants: Array<[string, Variant]>;
}

/** Queue i is active when i % 10 === 5: 10% of them, none paused, none with a seeded orphan. */
const active = (i: number) => i % 10 === 5;

function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(status.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm'))?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** Jobs added so far to the active queues (BullMQ INCRs each queue's `id` on every add). */
async function jobsAdded(admin: Redis, prefix: string, names: readonly string[]): Promise<number> {
  const ids = await Promise.all(names.map((n) => admin.get(`${prefix}:${n}:id`)));
  return ids.reduce((a, v) => a + Number(v ?? 0), 0);
}

/** A window that also counts the traffic's jobs in it, so its Redis cost can be taken out in proportion. */
async function trafficWindow(
  admin: Redis,
  prefix: string,
  names: readonly string[],
  during: (endsAt: number) => Promise<void>,
  seconds = WINDOW_S,
): Promise<Cost & { jobs: number }> {
  const j0 = await jobsAdded(admin, prefix, names);
  const cost = await window(admin, during, seconds);
  // Jobs per WINDOW_S, as the cost.
  return { ...cost, jobs: (((await jobsAdded(admin, prefix, names)) - j0) * WINDOW_S) / seconds };
}

async function startTraffic(server: TestRedis, prefix: string, size: number): Promise<ChildProcess> {
  const names = Array.from({ length: size }, (_, i) => i)
    .filter(active)
    .map(queueName);
  const child = spawn(process.execPath, [CHILD, server.url, prefix, names.join(','), String(RATE)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => d.toString().includes('READY') && resolve());
    child.once('exit', () => reject(new Error('traffic child exited')));
  });
  return child;
}

/** GETs `url` every `everyMs` (the first at once) until stopped, one at a time, as a scraper does. */
function scraper(url: string, everyMs: number): () => Promise<void> {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const t = Date.now();
      await fetch(url)
        .then((r) => r.text())
        .catch(() => '');
      while (!stopped && Date.now() - t < everyMs) await new Promise((r) => setTimeout(r, Math.min(100, everyMs)));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function sidecar(
  cli: string,
  server: TestRedis,
  prefix: string,
  size: number,
  extra: string[],
  admin: Redis,
  idle: string[],
  activeNames: string[],
): Promise<Variant> {
  const own = `ql${size}${cli !== CLI ? 'base' : extra.length > 0 ? 'old' : ''}`;
  const sc = await startSidecarProcess({ cli, redisUrl: server.url, prefix, size, own, extra });
  const { url } = sc;
  const proc = { pid: sc.pid };
  const ours = (name: string) => name.startsWith('queuelens');
  try {
    // Asked for as Prometheus would: two scrapes before the windows, so the pacing has seen the gap between them.
    let stop = scraper(url, SCRAPE_MS);
    await sleep(SETTLE_MS);
    const scrapedCost = await trafficWindow(admin, prefix, activeNames, async () => undefined, SCRAPED_S);
    const scrapedTime = await commandTime(admin, ours, () => sleep(SCRAPED_S * 1000), WINDOW_S / SCRAPED_S);
    await stop();
    stop = scraper(url, POLLER_MS);
    await sleep(POLLER_SETTLE_MS);
    const polledCost = await trafficWindow(admin, prefix, activeNames, async () => undefined);
    const polledTime = await commandTime(admin, ours, () => sleep(WINDOW_S * 1000), 1);
    await stop();
    const depth: number[] = [];
    const counter: number[] = [];
    const rss: number[] = [];
    const cycles: number[] = [];
    // Commands of ours at or above 1 ms of Redis time during the window (SLOWLOG at 1000 µs logs only those, so
    // it costs nothing measurable; wall time inside Redis, so a preempted Redis can only make them look slower).
    const [, threshold] = (await admin.config('GET', 'slowlog-log-slower-than')) as [string, string];
    await admin.slowlog('RESET');
    await admin.config('SET', 'slowlog-log-slower-than', '1000');
    const cost = await trafficWindow(admin, prefix, activeNames, async (endsAt) => {
      const sampler = setInterval(() => rss.push(memory(proc.pid as number).rss), 1000);
      // One probe after another until the window ends: a job added to a queue nobody works on.
      while (Date.now() < endsAt - 6000) {
        const name = idle.shift() as string;
        const labels = `prefix="${prefix}",queue="${name}"`;
        const body0 = await scrapeUntil(url, () => true, 10_000);
        const waiting0 = gauge(body0, `bullmq_queue_jobs{${labels},state="waiting"}`) ?? 0;
        const added0 = gauge(body0, `bullmq_jobs_added_total{${labels}}`) ?? 0;
        const q = new Queue(name, { connection: admin, prefix, skipMetasUpdate: true });
        const t0 = Date.now();
        await q.add('probe', {});
        let dDepth: number | undefined;
        let dCounter: number | undefined;
        while ((dDepth === undefined || dCounter === undefined) && Date.now() - t0 < 15_000) {
          const body = await fetch(url).then((r) => r.text());
          const t = Date.now() - t0;
          const cycle = gauge(body, 'bullmq_exporter_cycle_duration_seconds');
          if (cycle !== undefined) cycles.push(cycle);
          if (dDepth === undefined && (gauge(body, `bullmq_queue_jobs{${labels},state="waiting"}`) ?? 0) > waiting0) dDepth = t;
          if (dCounter === undefined && (gauge(body, `bullmq_jobs_added_total{${labels}}`) ?? 0) > added0) dCounter = t;
          await sleep(POLL_MS);
        }
        depth.push(dDepth ?? 15_000);
        counter.push(dCounter ?? 15_000);
        await q.close();
      }
      clearInterval(sampler);
    });
    await admin.config('SET', 'slowlog-log-slower-than', threshold);
    const slow = ((await admin.slowlog('GET', -1)) as Array<[number, number, number, string[], string, string]>)
      .filter(([, , , , addr, client]) => addr !== '?:0' && client.startsWith('queuelens'))
      .map(([, , usec, args]) => ({ usec, command: describe(args) }));
    const m = memory(proc.pid as number);
    return {
      scraped: { cost: scrapedCost, time: scrapedTime },
      polled: { cost: polledCost, time: polledTime },
      slow,
      cost,
      depthP50: median(depth),
      depthMax: Math.max(...depth),
      counterP50: median(counter),
      probes: depth.length,
      rssMb: median(rss),
      peakMb: m.hwm,
      cycleS: median(cycles),
    };
  } finally {
    await sc.stop();
  }
}

async function measure(server: TestRedis, size: number): Promise<Row> {
  const prefix = `traffic${size}`;
  const admin = new Redis({ host: '127.0.0.1', port: server.port, connectionName: 'bench-admin', maxRetriesPerRequest: null });
  await seedQueues(admin, prefix, size, Date.now());
  const traffic = await startTraffic(server, prefix, size);
  try {
    await new Promise((r) => setTimeout(r, 5000));
    const activeNames = Array.from({ length: size }, (_, i) => i)
      .filter(active)
      .map(queueName);
    const floor = await trafficWindow(admin, prefix, activeNames, async () => undefined);
    const shared = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null, connectionName: 'baseline' });
    const queues = Array.from({ length: size }, (_, i) => new Queue(queueName(i), { connection: shared, prefix, skipMetasUpdate: true }));
    await Promise.all(queues.map((q) => q.waitUntilReady()));
    const a = await trafficWindow(admin, prefix, activeNames, async () => {
      for (const q of queues) await q.getJobCounts();
    });
    const b = await trafficWindow(admin, prefix, activeNames, async () => {
      await Promise.all(queues.map((q) => q.getJobCounts()));
    });
    const baseline = (name: string) => name === 'baseline';
    const aTime = await commandTime(
      admin,
      baseline,
      async () => {
        for (const q of queues) await q.getJobCounts();
      },
      1,
    );
    const bTime = await commandTime(
      admin,
      baseline,
      async () => {
        await Promise.all(queues.map((q) => q.getJobCounts()));
      },
      1,
    );
    await Promise.all(queues.map((q) => q.close()));
    shared.disconnect();
    // Idle queues for the probes: each probed once (not active, not paused).
    const idle = Array.from({ length: size }, (_, i) => i)
      .filter((i) => !active(i) && i % 50 !== 0)
      .map(queueName);
    const variants: Array<[string, Variant]> = [['after', await sidecar(CLI, server, prefix, size, [], admin, idle, activeNames)]];
    // Another build's defaults in the same run (BASELINE_CLI), e.g. the code before a change, for what it moved.
    if (BASELINE_CLI && BASELINE_SIZES.includes(size))
      variants.push(['baseline', await sidecar(BASELINE_CLI, server, prefix, size, [], admin, idle, activeNames)]);
    if (BEFORE) variants.push(['before', await sidecar(CLI, server, prefix, size, ['--collect-sweep', '0'], admin, idle, activeNames)]);
    return { size, floor, a, b, aTime, bTime, variants };
  } finally {
    traffic.kill('SIGTERM');
    admin.disconnect();
  }
}

async function main(): Promise<void> {
  const load = loadAverage();
  const started = Date.now();
  const rows = await eachSize(SIZES, measure);
  const loadAfter = loadAverage();
  // The floor's Redis CPU per traffic job, times the jobs of the window: the traffic's share of each window.
  const net = (c: Cost & { jobs: number }, floor: Cost & { jobs: number }) => c.cpuMs - (floor.cpuMs / Math.max(1, floor.jobs)) * c.jobs;
  const ms = (n: number) => (n / 1000).toFixed(2);
  const rate = (c: { jobs: number }) => (c.jobs / WINDOW_S).toFixed(0);
  const body = [
    machineInfo(load),
    `- load average at the end: ${loadAfter}`,
    '',
    `Traffic: ${RATE} jobs/s asked for, added round-robin over 10% of the queues (queue i with i % 10 = 5), each with one`,
    'BullMQ Worker (concurrency 1, no work), in a child process; the queues are seeded as at rest (bench/lib/seed.ts).',
    `Each window is ${WINDOW_S} s with the traffic running; jobs/s is what the traffic achieved in it (the queues' \`id\``,
    "counters). Redis CPU (used_cpu of the process) is net of the traffic's share: the floor window (the traffic alone,",
    'same run) gives the Redis CPU per job, times the jobs added in the window; it can go below 0 by noise. Command time:',
    `every command of the sidecar's connections (client names \`queuelens:*\`) logged by SLOWLOG at 0 µs in a ${WINDOW_S} s window`,
    "of its own right after the CPU window, asked for the same way (a script's inner commands inside its own time); A's",
    "and B's: one pass of getJobCounts() over every queue (their work per window), logged the same way. Typical command",
    "time: each command's calls times its median time (a preempted Redis makes single calls take milliseconds of wall",
    'time inside Redis, which the sum adds up and this leaves out).',
    `Each sidecar is asked for its data in three ways, one after another: **scraped**, /metrics every ${SCRAPE_MS / 1000} s as`,
    `Prometheus would (and as A and B are charged: one pass per ${WINDOW_S} s), after ${SETTLE_MS / 1000} s of the same, in windows of ${SCRAPED_S} s`,
    `scaled to ${WINDOW_S} s (so that the discovery pass, every 60 s, a SCAN of the keyspace with traffic, falls in each); **polled**, /metrics`,
    `every ${POLLER_MS / 1000} s, after ${POLLER_SETTLE_MS / 1000} s of the same; **visibility**: one job at a time added to an idle queue and /metrics`,
    `polled every ${POLL_MS} ms until its depth (bullmq_queue_jobs waiting) and its bullmq_jobs_added_total move (p50 over the probes).`,
    'after: this build, defaults (a busy queue brought up to date once per look, about 2 s before each predicted one,',
    'while looks recur; else every half gap between looks, 1 to 7.5 s);',
    `baseline: ${process.env['BENCH_BASELINE_LABEL'] ?? BASELINE_CLI ?? '(none)'}, defaults;`,
    'before: this build with `--collect-sweep 0` (every queue at every collection). RSS: median of one sample a second in',
    'the visibility window; peak: VmHWM since start.',
    `Run time of the whole benchmark: ${Math.round((Date.now() - started) / 1000)} s.`,
    '',
    table(
      [
        'queues',
        'floor CPU (ms)',
        'floor jobs/s',
        'A CPU (ms)',
        'B CPU (ms)',
        'A / B command time, SLOWLOG (ms)',
        'A / B typical command time (ms)',
        'A / B calls/s',
      ],
      rows.map((r) => [
        r.size,
        r.floor.cpuMs.toFixed(1),
        rate(r.floor),
        net(r.a, r.floor).toFixed(1),
        net(r.b, r.floor).toFixed(1),
        `${ms(r.aTime.usec)} / ${ms(r.bTime.usec)}`,
        `${ms(r.aTime.typicalUsec)} / ${ms(r.bTime.typicalUsec)}`,
        `${r.a.callsPerS.toFixed(0)} / ${r.b.callsPerS.toFixed(0)}`,
      ]),
    ),
    '',
    table(
      [
        'queues',
        'variant',
        `scraped: command time (ms per ${WINDOW_S} s)`,
        'scraped: / B',
        'scraped: typical command time (ms) / B',
        'scraped: CPU net (ms)',
        'scraped: jobs/s',
        `polled ${POLLER_MS / 1000} s: command time (ms)`,
        'polled: / B',
        'polled: typical (ms) / B',
        'polled: CPU net (ms)',
        'polled: jobs/s',
        'visibility: depth p50 / max (s)',
        'counter p50 (s)',
        'probes',
        'visibility: CPU net (ms), jobs/s',
        'RSS / peak (MB)',
        'cycle (s)',
        'commands ≥ 1 ms (visibility window, longest µs)',
      ],
      rows.flatMap((r) =>
        r.variants.map(([name, v]) => [
          r.size,
          name,
          ms(v.scraped.time.usec),
          (v.scraped.time.usec / Math.max(1, r.bTime.usec)).toFixed(2),
          `${ms(v.scraped.time.typicalUsec)} / ${(v.scraped.time.typicalUsec / Math.max(1, r.bTime.typicalUsec)).toFixed(2)}`,
          net(v.scraped.cost, r.floor).toFixed(1),
          rate(v.scraped.cost),
          ms(v.polled.time.usec),
          (v.polled.time.usec / Math.max(1, r.bTime.usec)).toFixed(2),
          `${ms(v.polled.time.typicalUsec)} / ${(v.polled.time.typicalUsec / Math.max(1, r.bTime.typicalUsec)).toFixed(2)}`,
          net(v.polled.cost, r.floor).toFixed(1),
          rate(v.polled.cost),
          `${ms(v.depthP50)} / ${ms(v.depthMax)}`,
          ms(v.counterP50),
          v.probes,
          `${net(v.cost, r.floor).toFixed(1)}, ${rate(v.cost)}`,
          `${v.rssMb.toFixed(0)} / ${v.peakMb.toFixed(0)}`,
          v.cycleS.toFixed(2),
          `${v.slow.length}${v.slow.length > 0 ? ` (${Math.max(...v.slow.map((x) => x.usec))}, ${[...v.slow].sort((x, y) => y.usec - x.usec)[0]?.command})` : ''}`,
        ]),
      ),
    ),
    '',
    "Where each sidecar's Redis time goes (the command-time windows above), by command:",
    '',
    table(
      ['queues', 'variant', 'asked', 'command', 'calls/s', `Redis time per ${WINDOW_S} s (ms)`, 'longest call (µs)'],
      rows.flatMap((r) =>
        r.variants.flatMap(([name, v]) =>
          (
            [
              ['scraped', v.scraped.time],
              ['polled', v.polled.time],
            ] as const
          ).flatMap(([asked, t]) =>
            [...t.by]
              .sort((x, y) => y[1].usec - x[1].usec)
              .slice(0, 8)
              .map(([cmd, e]) => [r.size, name, asked, cmd, (e.calls / (asked === 'scraped' ? SCRAPED_S : WINDOW_S)).toFixed(1), ms(e.usec), e.maxUsec]),
          ),
        ),
      ),
    ),
  ].join('\n');
  writeSection(new URL('../../docs/benchmarks.md', import.meta.url), '## With traffic, freshness paced by demand (issue 16)', body);
}

await main();
