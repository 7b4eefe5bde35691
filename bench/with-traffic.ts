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
import { freePort, startTestRedis, type TestRedis } from '../test/helpers/redis-server.js';
import { gauge, scrapeUntil, window, WINDOW_S, type Cost } from './lib/redis-cost.js';
import { loadAverage, machineInfo, median, table, writeSection } from './lib/report.js';
import { queueName, seedQueues } from './lib/seed.js';

const SIZES = (process.env['BENCH_SIZES'] ?? '1000').split(',').map(Number);
const RATE = 120;
const POLL_MS = 50;
const SETTLE_MS = 20_000;
const CLI = new URL('../../dist/cli/index.js', import.meta.url).pathname;
const CHILD = new URL('./lib/traffic-child.js', import.meta.url).pathname;

interface Variant {
  cost: Cost;
  depthP50: number;
  depthMax: number;
  counterP50: number;
  probes: number;
  rssMb: number;
  peakMb: number;
}

interface Row {
  size: number;
  floor: Cost;
  a: Cost;
  b: Cost;
  before: Variant;
  after: Variant;
}

/** Queue i is active when i % 10 === 5: 10% of them, none paused, none with a seeded orphan. */
const active = (i: number) => i % 10 === 5;

function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(status.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm'))?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
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

async function sidecar(server: TestRedis, prefix: string, size: number, extra: string[], admin: Redis, idle: string[]): Promise<Variant> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/metrics`;
  const own = `ql${size}${extra.length > 0 ? 'b' : 'a'}`;
  const args = ['--redis-url', server.url, '--port', String(port), '--host', '127.0.0.1', '--prefixes', prefix, '--max-queues', String(size)];
  const proc = spawn(process.execPath, [CLI, 'sidecar', ...args, '--own-prefix', own, '--log-level', 'warn', ...extra], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  try {
    await scrapeUntil(
      url,
      (body) =>
        gauge(body, `bullmq_exporter_queues{prefix="${prefix}"}`) === size && (body.match(/^bullmq_exporter_events_lag_seconds\{/gm)?.length ?? 0) === size,
      300_000,
    );
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const depth: number[] = [];
    const counter: number[] = [];
    const rss: number[] = [];
    const cost = await window(admin, async (endsAt) => {
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
    const m = memory(proc.pid as number);
    return {
      cost,
      depthP50: median(depth),
      depthMax: Math.max(...depth),
      counterP50: median(counter),
      probes: depth.length,
      rssMb: median(rss),
      peakMb: m.hwm,
    };
  } finally {
    proc.kill('SIGTERM');
    await exited;
  }
}

async function measure(server: TestRedis, size: number): Promise<Row> {
  const prefix = `traffic${size}`;
  const admin = new Redis({ host: '127.0.0.1', port: server.port, connectionName: 'bench-admin', maxRetriesPerRequest: null });
  await seedQueues(admin, prefix, size, Date.now());
  const traffic = await startTraffic(server, prefix, size);
  try {
    await new Promise((r) => setTimeout(r, 5000));
    const floor = await window(admin, async () => undefined);
    const shared = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null, connectionName: 'baseline' });
    const queues = Array.from({ length: size }, (_, i) => new Queue(queueName(i), { connection: shared, prefix, skipMetasUpdate: true }));
    await Promise.all(queues.map((q) => q.waitUntilReady()));
    const a = await window(admin, async () => {
      for (const q of queues) await q.getJobCounts();
    });
    const b = await window(admin, async () => {
      await Promise.all(queues.map((q) => q.getJobCounts()));
    });
    await Promise.all(queues.map((q) => q.close()));
    shared.disconnect();
    // Idle queues for the probes: each probed once (not active, not paused).
    const idle = Array.from({ length: size }, (_, i) => i)
      .filter((i) => !active(i) && i % 50 !== 0)
      .map(queueName);
    const before = await sidecar(server, prefix, size, ['--collect-sweep', '0'], admin, idle);
    const after = await sidecar(server, prefix, size, [], admin, idle);
    return { size, floor, a, b, before, after };
  } finally {
    traffic.kill('SIGTERM');
    admin.disconnect();
  }
}

async function main(): Promise<void> {
  const load = loadAverage();
  const started = Date.now();
  const rows: Row[] = [];
  for (const size of SIZES) {
    const server = await startTestRedis();
    try {
      rows.push(await measure(server, size));
      console.log(JSON.stringify(rows.at(-1)));
    } finally {
      await server.stop();
    }
  }
  const net = (c: Cost, floor: Cost) => Math.max(0, c.cpuMs - floor.cpuMs);
  const ms = (n: number) => (n / 1000).toFixed(2);
  const body = [
    machineInfo(load),
    '',
    `Traffic: ${RATE} jobs/s added round-robin over 10% of the queues (queue i with i % 10 = 5), each with one BullMQ Worker`,
    '(concurrency 1, no work), in a child process; the queues are seeded as at rest (bench/lib/seed.ts). Each column is',
    `one ${WINDOW_S} s window with the traffic running; Redis CPU is net of the floor (the traffic alone) measured in the same run.`,
    'before: the real sidecar process with `--collect-sweep 0` (every queue read at every collection, every 5 s, as before',
    'change-driven collection); after: its defaults (queues whose events moved read within about a second, a sweep of',
    'the rest every 60 s). Visibility: during the window, one job at a time is added to an idle queue and /metrics',
    `polled every ${POLL_MS} ms until its depth (bullmq_queue_jobs waiting) and its bullmq_jobs_added_total move; p50 over`,
    'the probes. RSS: median of one sample a second during the window; peak: VmHWM since start.',
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
      ]),
    ),
  ].join('\n');
  writeSection(
    new URL('../../docs/benchmarks.md', import.meta.url),
    '## With traffic: change-driven collection against getJobCounts() exporters (issue 16)',
    body,
  );
}

await main();
