// Benchmark of issue 16 with traffic: 10% of the queues active (a BullMQ Worker each, a producer adding RATE jobs/s
// over them, in a child process), at 1,000 queues (BENCH_SIZES=1000,10000 for more), in one run:
//   floor       the traffic alone
//   A, B        BullMQ getJobCounts() of every queue once per window, sequential (A) and all at once (B)
//   before      the real `queuelens sidecar` with --collect-sweep 0: every queue read at every collection (5 s)
//   after       the same with its defaults: change-driven collection (sweep 60 s)
// Redis CPU per window net of the floor, calls/s (INFO commandstats, script-inner commands included), the
// visibility delay of a change (a job added to an idle queue: until /metrics shows its depth, and its added
// counter, polled every POLL_MS), and the sidecar's RSS (sampled each second) and peak (VmHWM). Writes its section
// of docs/benchmarks.md.
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
const SETTLE_MS = 20_000;
/** The window whose every command is logged (SLOWLOG at 0 µs) to split the sidecar's Redis time by command. */
const ATTRIBUTION_S = 10;
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

interface Variant {
  cost: Cost & { jobs: number };
  depthP50: number;
  depthMax: number;
  counterP50: number;
  probes: number;
  rssMb: number;
  peakMb: number;
  /** Median bullmq_exporter_cycle_duration_seconds seen by the probes. */
  cycleS: number;
  /** The sidecar's own commands (by client name) in a window of their own after the measured one, per WINDOW_S. */
  time: CommandTime;
  /** Its commands of at least 1 ms (SLOWLOG) during the measured window. */
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
  before: Variant;
  after: Variant;
  baseline?: Variant;
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
): Promise<Cost & { jobs: number }> {
  const j0 = await jobsAdded(admin, prefix, names);
  const cost = await window(admin, during);
  return { ...cost, jobs: (await jobsAdded(admin, prefix, names)) - j0 };
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
  try {
    await new Promise((r) => setTimeout(r, SETTLE_MS));
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
          await new Promise((r) => setTimeout(r, POLL_MS));
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
    const time = await commandTime(
      admin,
      (name) => name.startsWith('queuelens'),
      () => new Promise((r) => setTimeout(r, ATTRIBUTION_S * 1000)),
      WINDOW_S / ATTRIBUTION_S,
    );
    return {
      slow,
      time,
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
    const before = await sidecar(CLI, server, prefix, size, ['--collect-sweep', '0'], admin, idle, activeNames);
    const after = await sidecar(CLI, server, prefix, size, [], admin, idle, activeNames);
    // Another build's defaults in the same run (BASELINE_CLI), e.g. the code before a change, for what it moved.
    const base = BASELINE_CLI && BASELINE_SIZES.includes(size) ? await sidecar(BASELINE_CLI, server, prefix, size, [], admin, idle, activeNames) : undefined;
    return { size, floor, a, b, aTime, bTime, before, after, baseline: base };
  } finally {
    traffic.kill('SIGTERM');
    admin.disconnect();
  }
}

function longest(t: CommandTime): string {
  const [cmd, e] = [...t.by].sort((x, y) => y[1].maxUsec - x[1].maxUsec)[0] ?? ['-', { maxUsec: 0 }];
  return `${e.maxUsec} (${cmd})`;
}

async function main(): Promise<void> {
  const load = loadAverage();
  const started = Date.now();
  const rows = await eachSize(SIZES, measure);
  // The floor's Redis CPU per traffic job, times the jobs of the window: the traffic's share of each window.
  const net = (c: Cost & { jobs: number }, floor: Cost & { jobs: number }) => c.cpuMs - (floor.cpuMs / Math.max(1, floor.jobs)) * c.jobs;
  const ms = (n: number) => (n / 1000).toFixed(2);
  // The same for Redis's command time (INFO commandstats, each command once).
  const netCommand = (c: Cost & { jobs: number }, floor: Cost & { jobs: number }) => c.commandMs - (floor.commandMs / Math.max(1, floor.jobs)) * c.jobs;
  const body = [
    machineInfo(load),
    '',
    `Traffic: ${RATE} jobs/s added round-robin over 10% of the queues (queue i with i % 10 = 5), each with one BullMQ Worker`,
    '(concurrency 1, no work), in a child process; the queues are seeded as at rest (bench/lib/seed.ts). Each column is',
    `one ${WINDOW_S} s window with the traffic running. Redis CPU is net of the traffic's share: the floor window (the traffic`,
    "alone, same run) gives the Redis CPU per job, times the jobs added in the window (the queues' `id` counters), so a",
    'window in which the traffic ran slower (a busy shared machine) is not credited to the exporter; it can go below 0 by noise.',
    'before: the real sidecar process with `--collect-sweep 0` (every queue read at every collection, every 5 s, as before',
    'change-driven collection); after: its defaults (queues whose events moved read within about a second, a sweep of',
    'the rest every 60 s). Visibility: during the window, one job at a time is added to an idle queue and /metrics',
    `polled every ${POLL_MS} ms until its depth (bullmq_queue_jobs waiting) and its bullmq_jobs_added_total move; p50 over`,
    'the probes. RSS: median of one sample a second during the window; peak: VmHWM since start. Cycle: the median',
    'bullmq_exporter_cycle_duration_seconds the probes saw (a whole cycle: collection, read-back, rendering, board).',
    `Run time of the whole benchmark: ${Math.round((Date.now() - started) / 1000)} s.`,
    '',
    table(
      [
        'queues',
        'floor CPU (ms)',
        'A CPU (ms)',
        'B CPU (ms)',
        'before CPU (ms)',
        'after CPU (ms)',
        'after / B',
        'A calls/s',
        'B calls/s',
        'before calls/s',
        'after calls/s',
        'before depth p50 / max (s)',
        'after depth p50 / max (s)',
        'before counter p50 (s)',
        'after counter p50 (s)',
        'probes',
        'before RSS / peak (MB)',
        'after RSS / peak (MB)',
        'cycle before / after (s)',
        'A / B / before / after command time, INFO commandstats net of the floor (ms)',
        'A / B / before / after command time, SLOWLOG of own clients (ms)',
        'after / B (command time)',
        'longest command before / after (µs, SLOWLOG at 0)',
        'commands ≥ 1 ms before / after (window, longest µs)',
      ],
      rows.map((r) => [
        r.size,
        r.floor.cpuMs.toFixed(1),
        net(r.a, r.floor).toFixed(1),
        net(r.b, r.floor).toFixed(1),
        net(r.before.cost, r.floor).toFixed(1),
        net(r.after.cost, r.floor).toFixed(1),
        (net(r.after.cost, r.floor) / Math.max(0.001, net(r.b, r.floor))).toFixed(2),
        r.a.callsPerS.toFixed(0),
        r.b.callsPerS.toFixed(0),
        r.before.cost.callsPerS.toFixed(0),
        r.after.cost.callsPerS.toFixed(0),
        `${ms(r.before.depthP50)} / ${ms(r.before.depthMax)}`,
        `${ms(r.after.depthP50)} / ${ms(r.after.depthMax)}`,
        ms(r.before.counterP50),
        ms(r.after.counterP50),
        `${r.before.probes} / ${r.after.probes}`,
        `${r.before.rssMb.toFixed(0)} / ${r.before.peakMb.toFixed(0)}`,
        `${r.after.rssMb.toFixed(0)} / ${r.after.peakMb.toFixed(0)}`,
        `${r.before.cycleS.toFixed(2)} / ${r.after.cycleS.toFixed(2)}`,
        [r.a, r.b, r.before.cost, r.after.cost].map((c) => netCommand(c, r.floor).toFixed(1)).join(' / '),
        [r.aTime, r.bTime, r.before.time, r.after.time].map((t) => ms(t.usec)).join(' / '),
        (r.after.time.usec / Math.max(1, r.bTime.usec)).toFixed(2),
        `${longest(r.before.time)} / ${longest(r.after.time)}`,
        [r.before, r.after]
          .map(
            (v) =>
              `${v.slow.length}${v.slow.length > 0 ? ` (${Math.max(...v.slow.map((x) => x.usec))}, ${v.slow.sort((x, y) => y.usec - x.usec)[0]?.command})` : ''}`,
          )
          .join(' / '),
      ]),
    ),
    '',
    "Where the sidecar's Redis time goes with traffic: every command of its connections (client names `queuelens:*`)",
    `logged by SLOWLOG at a 0 µs threshold for ${ATTRIBUTION_S} s right after the measured window (no probes then), scaled to ${WINDOW_S} s;`,
    "a script's inner commands are inside its own time. The command time columns above are these sums; A's and B's",
    'are one pass of getJobCounts() over every queue (their work per window) logged the same way.',
    '',
    table(
      ['queues', 'variant', 'command', 'calls/s', `Redis time per ${WINDOW_S} s (ms)`, 'longest call (µs)'],
      rows.flatMap((r) =>
        (
          [
            ['before', r.before.time],
            ['after', r.after.time],
          ] as const
        ).flatMap(([variant, t]) =>
          [...t.by]
            .sort((x, y) => y[1].usec - x[1].usec)
            .slice(0, 10)
            .map(([cmd, e]) => [r.size, variant, cmd, (e.calls / ATTRIBUTION_S).toFixed(1), ms(e.usec), e.maxUsec]),
        ),
      ),
    ),
    ...(rows.some((r) => r.baseline)
      ? [
          '',
          `Another build in the same run (BENCH_BASELINE_CLI, with its defaults): ${process.env['BENCH_BASELINE_LABEL'] ?? BASELINE_CLI}.`,
          '',
          table(
            [
              'queues',
              'variant',
              'CPU net (ms)',
              'command time net, commandstats (ms)',
              'command time, SLOWLOG (ms)',
              'calls/s',
              'depth p50 / max (s)',
              'counter p50 (s)',
              'RSS / peak (MB)',
            ],
            rows.flatMap((r) =>
              (
                [
                  ['baseline', r.baseline],
                  ['after', r.after],
                ] as const
              ).flatMap(([variant, v]) =>
                v
                  ? [
                      [
                        r.size,
                        variant,
                        net(v.cost, r.floor).toFixed(1),
                        netCommand(v.cost, r.floor).toFixed(1),
                        ms(v.time.usec),
                        v.cost.callsPerS.toFixed(0),
                        `${ms(v.depthP50)} / ${ms(v.depthMax)}`,
                        ms(v.counterP50),
                        `${v.rssMb.toFixed(0)} / ${v.peakMb.toFixed(0)}`,
                      ],
                    ]
                  : [],
              ),
            ),
          ),
          '',
          table(
            ['queues', 'command (baseline build)', 'calls/s', `Redis time per ${WINDOW_S} s (ms)`, 'longest call (µs)'],
            rows.flatMap((r) =>
              [...(r.baseline?.time.by ?? [])]
                .sort((x, y) => y[1].usec - x[1].usec)
                .slice(0, 10)
                .map(([cmd, e]) => [r.size, cmd, (e.calls / ATTRIBUTION_S).toFixed(1), ms(e.usec), e.maxUsec]),
            ),
          ),
        ]
      : []),
  ].join('\n');
  writeSection(
    new URL('../../docs/benchmarks.md', import.meta.url),
    '## With traffic: change-driven collection against getJobCounts() exporters (issue 16)',
    body,
  );
}

await main();
