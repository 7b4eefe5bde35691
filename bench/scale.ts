// Benchmark of issue 16 at scale ("memory bounded by queues", "large fleets degrade gracefully"): the real
// `queuelens sidecar` process as deployed (the image's entry point with the Deployment's NODE_OPTIONS, defaults
// otherwise) at 10,000 queues with traffic and at 50,000 queues (--max-queues raised), in one run with the naive
// exporters A and B (getJobCounts() of every queue per scrape, one after another / all at once, in their own
// processes) at the same size. Per size, on a private redis-server:
//   - RSS (median of one sample a second) and peak (VmHWM) of the sidecar over a window with traffic;
//   - /metrics latency under 50 concurrent scrapers (bench/lib/scrapers.ts, gzip), against a bare server
//     answering the same bytes (the floor);
//   - completeness: from spawn, /metrics polled until it holds every queue's series (time to the first full
//     set), then every poll must hold them all (a blanked or partial /metrics counts as incomplete);
//   - the collection interval in force and the cycle duration the sidecar exports (it stretches, it must not blank);
//   - SLOWLOG with slowlog-log-slower-than 1000 µs over the whole run: the longest entry per command name and
//     client (ours, the traffic's BullMQ, the baselines).
// Traffic: a child process with one BullMQ Worker per active queue and a producer adding RATE jobs/s over them
// (bench/lib/traffic-child.ts, as bench/with-traffic.ts). Writes its section of docs/benchmarks.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { get } from 'node:http';
import { Redis } from 'ioredis';
import { startTestRedis, type TestRedis } from '../test/helpers/redis-server.js';
import { LUA_SOURCES } from '../src/redis/lua-embedded.js';
import { loadAverage, machineInfo, median, table, writeSection } from './lib/report.js';
import { burstScrapers, floorServer, type BurstResult } from './lib/scrapers.js';
import { queueName, seedQueues } from './lib/seed.js';
import { cpuMs, memoryMb, spawnDeployedSidecar, type DeployedSidecar } from './lib/sidecar-process.js';

const SIZES = (process.env['BENCH_SIZES'] ?? '10000,50000').split(',').map(Number);
/** Jobs/s added over the active queues. */
const RATE = 120;
/** Active queues: 10% of them (i % 10 === 5), at most this many (one BullMQ Worker, one connection each). */
const MAX_ACTIVE = 1000;
const SCRAPERS = 50;
/** Scrapes per second of each scraper, all 50 at once. */
const SCRAPE_RATE = 1;
const SCRAPE_S = Number(process.env['BENCH_SCRAPE_S'] ?? 20);
/** RSS and completeness window with traffic, after the first full set and a settling period. */
const WINDOW_S = Number(process.env['BENCH_WINDOW_S'] ?? 90);
const SETTLE_S = Number(process.env['BENCH_SETTLE_S'] ?? 30);
const POLL_MS = 1000;
const FIRST_FULL_TIMEOUT_S = 900;
const SLOW_US = 1000;
const CHILD = new URL('./lib/traffic-child.js', import.meta.url).pathname;
const BASELINE = new URL('./lib/baseline-exporter.js', import.meta.url).pathname;
const GZIP = { accept: 'text/plain', 'accept-encoding': 'gzip' };

interface Poll {
  /** Seconds since spawn. */
  atS?: number;
  /** Why a poll got no body. */
  error?: string;
  complete: boolean;
  queues: number;
  lag: number;
  intervalS?: number;
  cycleS?: number;
  up?: number;
  /** The sidecar's own event-loop delay (prom-client: monitorEventLoopDelay, reset at each render of the process metrics, ~1 s). */
  lagP99S?: number;
  lagMaxS?: number;
  /** The sidecar's V8 heap in use (nodejs_heap_size_used_bytes, MB): its low point follows the live heap. */
  heapUsedMb?: number;
}

/** The sidecar's GC pauses (prom-client's nodejs_gc_duration_seconds, cumulative) at one moment. */
interface GcTotals {
  count: number;
  sumS: number;
  /** Pauses longer than 0.1 s and 1 s. */
  over100ms: number;
  over1s: number;
  majorCount: number;
  majorSumS: number;
}

/** What the sidecar's process metrics say of the scrape window. */
interface LoopStats {
  /** Polls during the scrapers that carried event-loop delay values. */
  samples: number;
  lagP99MedianMs: number;
  lagP99MaxMs: number;
  lagMaxMs: number;
  gc: GcTotals;
  /** The sidecar's CPU time (user + system) over the scrape window, per second of it: what it costs, whoever else runs. */
  cpuPerS: number;
}

interface Baseline {
  mode: 'A' | 'B';
  /** One scrape alone (ms). */
  singleMs: number;
  /** One burst of SCRAPERS at once (ms), when run at this size. */
  burst?: BurstResult;
  rssMb: number;
  peakMb: number;
}

interface SlowEntry {
  command: string;
  client: string;
  maxUs: number;
  count: number;
}

interface Row {
  size: number;
  active: number;
  jobsPerS: number;
  firstFullS: number;
  polls: number;
  incomplete: number;
  /** The first incomplete polls, as seen. */
  incompleteSample: Poll[];
  intervalS: { min: number; max: number };
  cycleS: { median: number; max: number };
  rssMb: number;
  rssMaxMb: number;
  /** Lowest and median V8 heap in use over the polls from the first full set on. */
  heapUsedMb: { min: number; median: number };
  peakMb: number;
  bodyBytes: number;
  gzipBytes: number;
  sidecar: BurstResult;
  floor: BurstResult;
  loop: LoopStats;
  baselines: Baseline[];
  slow: SlowEntry[];
}

const active = (i: number) => i % 10 === 5;

/**
 * The Deployment's --max-old-space-size covers up to 10,000 queues; a larger fleet raises it as docs/scaling.md
 * ("Memory per queue") says, 512 MB per 10,000 queues, and so does the benchmark (a flag on the command line wins
 * over NODE_OPTIONS).
 */
function oldSpaceFlag(size: number): string[] {
  return size > 10_000 ? [`--max-old-space-size=${Math.ceil(size / 10_000) * 512}`] : [];
}

/** The body as sent and decompressed. */
function scrape(url: string, headers: Record<string, string> = GZIP): Promise<{ gzip: Buffer; text: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString() : raw.toString();
        resolve({ gzip: raw, text, ms: performance.now() - t0 });
      });
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** The body as sent, unread. */
function fetchRaw(url: string, headers: Record<string, string> = GZIP): Promise<{ raw: Buffer; encoding?: string }> {
  return new Promise((resolve, reject) => {
    get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ raw: Buffer.concat(chunks), encoding: res.headers['content-encoding'] }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

const value = (text: string, series: string): number | undefined => {
  const at = text.indexOf(`\n${series} `);
  if (at < 0) return undefined;
  return Number(text.slice(at + series.length + 2, text.indexOf('\n', at + 1)));
};

function count(text: string, re: RegExp): number {
  return text.match(re)?.length ?? 0;
}

/** Whether /metrics holds every queue's series: its waiting depth and its event lag (one each per queue). */
function poll(text: string, size: number): Poll {
  const queues = count(text, /^bullmq_queue_jobs\{[^\n]*state="waiting"\}/gm);
  const lag = count(text, /^bullmq_exporter_events_lag_seconds\{/gm);
  return {
    complete: queues === size && lag === size,
    queues,
    lag,
    intervalS: value(text, 'bullmq_exporter_collect_interval_seconds'),
    cycleS: value(text, 'bullmq_exporter_cycle_duration_seconds'),
    up: value(text, 'bullmq_exporter_up'),
    lagP99S: value(text, 'nodejs_eventloop_lag_p99_seconds'),
    lagMaxS: value(text, 'nodejs_eventloop_lag_max_seconds'),
    heapUsedMb: (value(text, 'nodejs_heap_size_used_bytes') ?? Number.NaN) / 2 ** 20,
  };
}

const GC_KINDS = ['minor', 'major', 'incremental', 'weakcb'];

/** The GC pause totals in a body: count, sum and the pauses over 0.1 s / 1 s from the histogram's buckets. */
function gcTotals(text: string): GcTotals {
  const t: GcTotals = { count: 0, sumS: 0, over100ms: 0, over1s: 0, majorCount: 0, majorSumS: 0 };
  for (const kind of GC_KINDS) {
    const count = value(text, `nodejs_gc_duration_seconds_count{kind="${kind}"}`) ?? 0;
    const sum = value(text, `nodejs_gc_duration_seconds_sum{kind="${kind}"}`) ?? 0;
    t.count += count;
    t.sumS += sum;
    t.over100ms += count - (value(text, `nodejs_gc_duration_seconds_bucket{le="0.1",kind="${kind}"}`) ?? count);
    t.over1s += count - (value(text, `nodejs_gc_duration_seconds_bucket{le="1",kind="${kind}"}`) ?? count);
    if (kind === 'major') {
      t.majorCount = count;
      t.majorSumS = sum;
    }
  }
  return t;
}

function gcDiff(a: GcTotals, b: GcTotals): GcTotals {
  return {
    count: b.count - a.count,
    sumS: b.sumS - a.sumS,
    over100ms: b.over100ms - a.over100ms,
    over1s: b.over1s - a.over1s,
    majorCount: b.majorCount - a.majorCount,
    majorSumS: b.majorSumS - a.majorSumS,
  };
}

async function startTraffic(server: TestRedis, prefix: string, names: readonly string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CHILD, server.url, prefix, names.join(','), String(RATE)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => d.toString().includes('READY') && resolve());
    child.once('exit', () => reject(new Error('traffic child exited')));
  });
  return child;
}

async function jobsAdded(admin: Redis, prefix: string, names: readonly string[]): Promise<number> {
  const ids = await admin.mget(...names.map((n) => `${prefix}:${n}:id`));
  return ids.reduce((a, v) => a + Number(v ?? 0), 0);
}

async function baseline(server: TestRedis, prefix: string, size: number, mode: 'A' | 'B', burst: boolean): Promise<Baseline> {
  const proc = spawn(process.execPath, [BASELINE, server.url, prefix, String(size), mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      proc.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      proc.once('exit', (code) => reject(new Error(`baseline ${mode} exited with ${code}`)));
    });
    const url = `http://127.0.0.1:${port}/metrics`;
    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(memoryMb(proc.pid!).rss), 1000);
    try {
      await scrape(url); // warm-up
      const singleMs = (await scrape(url)).ms;
      const b = burst
        ? await burstScrapers({ port, path: '/metrics', connections: SCRAPERS, ratePerConnection: SCRAPE_RATE, durationS: 1, headers: GZIP })
        : undefined;
      rss.push(memoryMb(proc.pid!).rss);
      return { mode, singleMs, burst: b, rssMb: median(rss), peakMb: memoryMb(proc.pid!).hwm };
    } finally {
      clearInterval(sampler);
    }
  } finally {
    proc.kill('SIGTERM');
    await exited;
  }
}

/** sha1 → script name: ours (lua-embedded) and BullMQ's are told apart by the client name anyway. */
const SCRIPTS = new Map(Object.entries(LUA_SOURCES).map(([file, src]) => [createHash('sha1').update(src).digest('hex'), file.replace(/-(\d+|n)\.lua$/, '')]));

async function slowlog(admin: Redis): Promise<SlowEntry[]> {
  const entries = (await admin.slowlog('GET', 1_000_000)) as Array<[number, number, number, string[], string, string]>;
  const out = new Map<string, SlowEntry>();
  for (const [, , usec, args, addr, name] of entries) {
    if (addr === '?:0') continue; // a command run inside a script: its time is the script's
    const cmd = (args[0] ?? '?').toUpperCase();
    const script = /^EVALSHA/.test(cmd) ? (SCRIPTS.get(args[1] ?? '') ?? 'bullmq script') : undefined;
    const command = script ? `${cmd} ${script}` : cmd;
    const client = name.startsWith('queuelens') ? name : name.startsWith('baseline') ? name : name === 'bench-admin' ? 'bench' : 'traffic (BullMQ)';
    const key = `${client}\u0000${command}`;
    const e = out.get(key) ?? { command, client, maxUs: 0, count: 0 };
    e.maxUs = Math.max(e.maxUs, usec);
    e.count += 1;
    out.set(key, e);
  }
  return [...out.values()].sort((a, b) => b.maxUs - a.maxUs);
}

async function measure(size: number): Promise<Row> {
  const server = await startTestRedis();
  const prefix = `scale${size}`;
  const admin = new Redis({ host: '127.0.0.1', port: server.port, connectionName: 'bench-admin', maxRetriesPerRequest: null });
  let traffic: ChildProcess | undefined;
  let sc: DeployedSidecar | undefined;
  try {
    await admin.config('SET', 'slowlog-log-slower-than', String(SLOW_US));
    await admin.config('SET', 'slowlog-max-len', '1000000');
    await seedQueues(admin, prefix, size, Date.now());
    await admin.slowlog('RESET');
    const names = Array.from({ length: size }, (_, i) => i)
      .filter(active)
      .slice(0, MAX_ACTIVE)
      .map(queueName);
    traffic = await startTraffic(server, prefix, names);
    const jobs0 = await jobsAdded(admin, prefix, names);
    const t0 = performance.now();

    // The sidecar from spawn to its first full /metrics.
    sc = await spawnDeployedSidecar({
      redisUrl: server.url,
      prefix,
      own: `ql${size}`,
      extra: ['--max-queues', String(size)],
      // For a look inside (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`); the numbers in docs/benchmarks.md are without.
      nodeFlags: [...oldSpaceFlag(size), ...(process.env['BENCH_SIDECAR_NODE_FLAGS']?.split(' ').filter(Boolean) ?? [])],
    });
    let firstFullS = NaN;
    for (;;) {
      if (sc.exited()) throw new Error('the sidecar exited');
      if (performance.now() - sc.spawnedAt > FIRST_FULL_TIMEOUT_S * 1000) throw new Error(`no full /metrics within ${FIRST_FULL_TIMEOUT_S} s`);
      const p = await scrape(sc.url)
        .then((r) => poll(r.text, size))
        .catch(() => undefined);
      if (p?.complete) {
        firstFullS = (performance.now() - sc.spawnedAt) / 1000;
        break;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    console.log(`${size}: first full /metrics after ${firstFullS.toFixed(1)} s`);

    // From the first full set on, every poll must hold every queue: through settling, the RSS window and the scrapers.
    const polls: Poll[] = [];
    const rss: number[] = [];
    let bodyBytes = 0;
    let gzipBytes = 0;
    let polling = true;
    const pid = sc.pid;
    const url = sc.url;
    const spawnedAt = sc.spawnedAt;
    // While the scrapers run, a poll keeps its gzip bytes and is read afterwards: decompressing and searching
    // 16 MB of text in this process, which also runs the scrapers' client, would delay their answers' reading.
    let deferring = false;
    const deferred: Array<{ atS: number; raw: Buffer; encoding?: string }> = [];
    const windowPolls: Poll[] = [];
    const poller = (async () => {
      while (polling) {
        const started = performance.now();
        const atS = Math.round((started - spawnedAt) / 100) / 10;
        if (deferring) {
          const r = await fetchRaw(url).catch((err: Error) => err);
          if (r instanceof Error) polls.push({ complete: false, queues: 0, lag: 0, error: r.message, atS });
          else deferred.push({ atS, ...r });
        } else {
          let error: string | undefined;
          const r = await scrape(url).catch((err: Error) => void (error = err.message));
          const p: Poll = r ? poll(r.text, size) : { complete: false, queues: 0, lag: 0, error };
          p.atS = atS;
          polls.push(p);
          if (r && p.complete) {
            bodyBytes = Buffer.byteLength(r.text);
            gzipBytes = r.gzip.length;
          }
        }
        await new Promise((res) => setTimeout(res, Math.max(0, POLL_MS - (performance.now() - started))));
      }
    })();
    await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
    const sampler = setInterval(() => rss.push(memoryMb(pid).rss), 1000);
    await new Promise((r) => setTimeout(r, WINDOW_S * 1000));

    // 50 scrapers at once, each once a second, against the sidecar and then a bare server answering its bytes.
    const before = await scrape(url);
    const cpu0 = { ms: cpuMs(pid), at: performance.now() };
    const bytes = before.gzip;
    deferring = true;
    const sidecar = await burstScrapers({
      port: sc.port,
      path: '/metrics',
      connections: SCRAPERS,
      ratePerConnection: SCRAPE_RATE,
      durationS: SCRAPE_S,
      headers: GZIP,
    });
    clearInterval(sampler);
    polling = false;
    await poller;
    const cpuPerS = (cpuMs(pid) - cpu0.ms) / (performance.now() - cpu0.at);
    const after = await scrape(url);
    for (const d of deferred) {
      const text = d.encoding === 'gzip' ? gunzipSync(d.raw).toString() : d.raw.toString();
      const p = { ...poll(text, size), atS: d.atS };
      polls.push(p);
      windowPolls.push(p);
    }
    polls.sort((a, b) => (a.atS ?? 0) - (b.atS ?? 0));
    const lagP99 = windowPolls.flatMap((p) => (p.lagP99S === undefined ? [] : [p.lagP99S * 1000])).sort((a, b) => a - b);
    const lagMax = windowPolls.flatMap((p) => (p.lagMaxS === undefined ? [] : [p.lagMaxS * 1000]));
    const loop: LoopStats = {
      samples: lagP99.length,
      lagP99MedianMs: median(lagP99),
      lagP99MaxMs: Math.max(...lagP99),
      lagMaxMs: Math.max(...lagMax),
      gc: gcDiff(gcTotals(before.text), gcTotals(after.text)),
      cpuPerS,
    };
    console.log(`${size}: event loop and GC over the scrapers: ${JSON.stringify(loop)}`);
    const mem = memoryMb(pid);
    const floorSrv = await floorServer(bytes, { 'content-type': 'text/plain; version=0.0.4', 'content-encoding': 'gzip' });
    let floor: BurstResult;
    try {
      floor = await burstScrapers({
        port: floorSrv.port,
        path: '/metrics',
        connections: SCRAPERS,
        ratePerConnection: SCRAPE_RATE,
        durationS: SCRAPE_S,
        headers: GZIP,
      });
    } finally {
      await floorSrv.stop();
    }
    const jobsPerS = ((await jobsAdded(admin, prefix, names)) - jobs0) / ((performance.now() - t0) / 1000);
    await sc.stop();
    sc = undefined;

    // The baselines at the same size, traffic still running; a burst of 50 where one pass takes seconds, not minutes.
    const burst = size <= 10_000;
    // BENCH_BASELINES=0 leaves them out (a quick look at the sidecar alone; the docs want them).
    const baselines =
      process.env['BENCH_BASELINES'] === '0' ? [] : [await baseline(server, prefix, size, 'A', burst), await baseline(server, prefix, size, 'B', burst)];
    const slow = await slowlog(admin);
    const intervals = polls.flatMap((p) => (p.intervalS === undefined ? [] : [p.intervalS]));
    const cycles = polls.flatMap((p) => (p.cycleS === undefined ? [] : [p.cycleS]));
    const heaps = polls.flatMap((p) => (p.heapUsedMb === undefined || Number.isNaN(p.heapUsedMb) ? [] : [p.heapUsedMb]));
    return {
      size,
      active: names.length,
      jobsPerS,
      firstFullS,
      polls: polls.length,
      incomplete: polls.filter((p) => !p.complete).length,
      incompleteSample: polls.filter((p) => !p.complete).slice(0, 8),
      intervalS: { min: Math.min(...intervals), max: Math.max(...intervals) },
      cycleS: { median: median(cycles), max: Math.max(...cycles) },
      rssMb: median(rss),
      rssMaxMb: Math.max(...rss),
      heapUsedMb: { min: Math.min(...heaps), median: median(heaps) },
      peakMb: mem.hwm,
      bodyBytes,
      gzipBytes,
      sidecar,
      floor,
      loop,
      baselines,
      slow,
    };
  } finally {
    await sc?.stop();
    traffic?.kill('SIGTERM');
    admin.disconnect();
    await server.stop();
  }
}

const lat = (b: BurstResult | undefined) => (b ? `${b.p50} / ${b.p99} / ${b.max} ms (${b.requests} requests, ${b.errors} errors)` : '–');
const mb = (n: number) => n.toFixed(0);

async function main(): Promise<void> {
  const load = loadAverage();
  const started = Date.now();
  const rows: Row[] = [];
  const loads: string[] = [];
  for (const size of SIZES) {
    rows.push(await measure(size));
    loads.push(`${size}: ${loadAverage()}`);
    console.log(JSON.stringify(rows.at(-1)));
  }
  const body = [
    'Run with `npm run bench:scale` (bench/scale.ts; `BENCH_SIZES=10000` for one size). One run on this machine:',
    '',
    machineInfo(load),
    `- load average at the end of each size: ${loads.join('; ')}; run time ${Math.round((Date.now() - started) / 1000)} s`,
    '',
    'The sidecar runs as deployed: the image entry point (`node --import ./dist/tracing/register.js dist/cli/index.js',
    "sidecar`) with the Deployment's NODE_OPTIONS and GLIBC_TUNABLES (above 10,000 queues `--max-old-space-size` raised by the sizing rule of",
    'docs/scaling.md, 512 MB per 10,000 queues), defaults otherwise, `--max-queues` at the size. Seeded queues as in',
    `bench/lib/seed.ts (16 jobs each); traffic: ${RATE} jobs/s added round-robin over 10% of the queues, at most ${MAX_ACTIVE}`,
    '(one BullMQ Worker each, concurrency 1, in a child process), from before the sidecar starts to the end. /metrics is polled',
    `every ${POLL_MS / 1000} s from spawn: "first full" is the time to the first body holding every queue's depth`,
    '(`bullmq_queue_jobs{state="waiting"}`) and event lag series; from then on every poll must hold them all (settling',
    `${SETTLE_S} s, the RSS window ${WINDOW_S} s, the scrapers). RSS: median (and max) of one sample a second over the window;`,
    'peak: VmHWM at the end. V8 heap used: `nodejs_heap_size_used_bytes` of the polls from the first full set on (its low',
    'point, right after a major GC, is about the live JS heap; Buffers and typed arrays live outside it).',
    `Scrapers: ${SCRAPERS} keep-alive connections, all asking at once, ${SCRAPE_RATE} scrape/s each,`,
    `gzip, ${SCRAPE_S} s (bench/lib/scrapers.ts); the floor is a bare node:http server answering the same bytes, right after.`,
    'A and B: a tiny exporter process answering each scrape with BullMQ `getJobCounts()` of every queue, one after',
    `another (A) or all at once (B), 7 series per queue (bench/lib/baseline-exporter.ts), traffic still running; one burst`,
    `of ${SCRAPERS} scrapes at once at 10,000 queues (one scrape alone at 50,000: a burst of A would take minutes).`,
    `SLOWLOG: slowlog-log-slower-than ${SLOW_US} µs from seeding's end to the end of the size (the sidecar from spawn on,`,
    "the traffic, the baselines); commands run inside a script are left out (their time is the script's).",
    '',
    table(
      [
        'queues',
        'active / jobs/s',
        'first full /metrics (s)',
        'polls incomplete / all',
        'interval in force min–max (s)',
        'cycle median / max (s)',
        'RSS median / max / peak (MB)',
        'V8 heap used min / median (MB)',
        'body text / gzip (MB)',
        `/metrics, ${SCRAPERS} scrapers: p50 / p99 / max`,
        'floor p50 / p99 / max',
      ],
      rows.map((r) => [
        r.size.toLocaleString('en-US'),
        `${r.active} / ${r.jobsPerS.toFixed(0)}`,
        r.firstFullS.toFixed(1),
        `${r.incomplete} / ${r.polls}`,
        `${r.intervalS.min}–${r.intervalS.max}`,
        `${r.cycleS.median.toFixed(2)} / ${r.cycleS.max.toFixed(2)}`,
        `${mb(r.rssMb)} / ${mb(r.rssMaxMb)} / ${mb(r.peakMb)}`,
        `${mb(r.heapUsedMb.min)} / ${mb(r.heapUsedMb.median)}`,
        `${(r.bodyBytes / 1e6).toFixed(1)} / ${(r.gzipBytes / 1e6).toFixed(2)}`,
        lat(r.sidecar),
        lat(r.floor),
      ]),
    ),
    '',
    `The sidecar's event loop and GC while the ${SCRAPERS} scrapers ran, from its own process metrics (prom-client):`,
    'event-loop delay p99 and max of `monitorEventLoopDelay` (10 ms resolution, reset at each render of the process',
    'metrics, at most every collect interval (5 s); one value per poll), GC pauses from',
    "`nodejs_gc_duration_seconds` (cumulative; read just before and just after the scrapers), and the sidecar's CPU time",
    'over the scrapers per second of them (/proc).',
    '',
    table(
      [
        'queues',
        'polls with values',
        'event-loop delay p99: median / max of polls (ms)',
        'event-loop delay max (ms)',
        'GC pauses: count / total (s)',
        'of them major: count / total (s)',
        'pauses over 100 ms / over 1 s',
        'sidecar CPU (s per s)',
      ],
      rows.map((r) => [
        r.size.toLocaleString('en-US'),
        r.loop.samples,
        `${r.loop.lagP99MedianMs.toFixed(0)} / ${r.loop.lagP99MaxMs.toFixed(0)}`,
        r.loop.lagMaxMs.toFixed(0),
        `${r.loop.gc.count} / ${r.loop.gc.sumS.toFixed(2)}`,
        `${r.loop.gc.majorCount} / ${r.loop.gc.majorSumS.toFixed(2)}`,
        `${r.loop.gc.over100ms} / ${r.loop.gc.over1s}`,
        r.loop.cpuPerS.toFixed(2),
      ]),
    ),
    '',
    'Baselines in the same run:',
    '',
    table(
      ['queues', 'exporter', 'one scrape alone (ms)', `${SCRAPERS} scrapes at once: p50 / p99 / max`, 'RSS median / peak (MB)'],
      rows.flatMap((r) =>
        r.baselines.map((b) => [r.size.toLocaleString('en-US'), b.mode, b.singleMs.toFixed(0), lat(b.burst), `${mb(b.rssMb)} / ${mb(b.peakMb)}`]),
      ),
    ),
    '',
    `Slowest commands over ${SLOW_US} µs (SLOWLOG, top-level), longest per command name and client:`,
    '',
    table(
      ['queues', 'client', 'command', 'longest (µs)', 'entries over 1 ms'],
      rows.flatMap((r) => r.slow.map((s) => [r.size.toLocaleString('en-US'), s.client, s.command, s.maxUs, s.count])),
    ),
  ].join('\n');
  writeSection(new URL('../../docs/benchmarks.md', import.meta.url), '## Scale: 10,000 and 50,000 queues (issue 16)', body);
}

await main();
