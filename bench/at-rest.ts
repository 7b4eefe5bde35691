// Benchmark of issue 16 at rest (no job moving): what each exporter costs the Redis process per 15 s, the
// scrape interval of Prometheus, at 1,000 and 10,000 queues, in the same run:
//   A  BullMQ getJobCounts() of every queue, one after another, once per scrape (a tiny exporter)
//   B  the same, all queues at once (Promise.all)
//   queuelens  the real `queuelens sidecar` process with its defaults (collector every 5 s, event reader on)
// Redis CPU is the used_cpu_user + used_cpu_sys of the Redis process over the window, net of the floor measured
// in the same run with no client but the benchmark's own connection; command time is the INFO commandstats usec
// (bench/lib/redis-cost.ts), steadier on a shared machine. Windows of 60 s, BENCH_REPEATS of each (medians).
// Calls/s count every command Redis ran (scripts' inner commands included). Writes its section of
// docs/benchmarks.md. BENCH_SIZES (1000,10000), BENCH_REPEATS (3), BENCH_BEFORE_SIZES (1000: sizes that also run
// the sidecar with --collect-sweep 0, as before change-driven collection).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { TestRedis } from '../test/helpers/redis-server.js';
import { loadAverage, machineInfo, median, table, writeSection } from './lib/report.js';
import { FULL_SCAN_EVERY_MS } from '../src/collector/discovery.js';
import { cpuUsec, eachSize, scrapeUntil, startSidecarProcess, window, WINDOW_S, type Cost } from './lib/redis-cost.js';
import { queueName, seedQueues } from './lib/seed.js';

const SIZES = (process.env['BENCH_SIZES'] ?? '1000,10000').split(',').map(Number);
/** Windows of each kind per size (one number, or one per size); each row shows the median. */
const REPEATS_LIST = (process.env['BENCH_REPEATS'] ?? '3').split(',').map(Number);
const repeatsOf = (size: number) => REPEATS_LIST[SIZES.indexOf(size)] ?? (REPEATS_LIST[0] as number);
/** Sizes that also measure queuelens before change-driven collection (at 10,000 it did not export every queue in 300 s). */
const BEFORE_SIZES = new Set((process.env['BENCH_BEFORE_SIZES'] ?? '1000').split(',').filter(Boolean).map(Number));
/** Every window lasts this long and is scaled to 15 s: one default --discovery-interval, and four scrapes of A and B. */
const LONG_S = 60;
/** The forced full SCAN of discovery (collector/discovery.ts FULL_SCAN_EVERY_MS): its cost is spread over these windows. */
const FULL_SCAN_WINDOWS = FULL_SCAN_EVERY_MS / 1000 / WINDOW_S;
const CLI = new URL('../../dist/cli/index.js', import.meta.url).pathname;
const LUA = new URL('../../src/redis/lua/', import.meta.url);
/** sha1 → file name of our scripts, to name them in the slow log. */
const SCRIPTS = new Map(
  readdirSync(LUA).map(
    (f) =>
      [
        createHash('sha1')
          .update(readFileSync(new URL(f, LUA)))
          .digest('hex'),
        f,
      ] as const,
  ),
);

interface Row {
  size: number;
  floor: Cost;
  a: Cost;
  b: Cost;
  /** queuelens with --collect-sweep 0: every queue read at every collection, as before change-driven collection. */
  before: Cost | undefined;
  ql: Cost;
  /** One full discovery SCAN pass (not scaled), as the sidecar runs one every FULL_SCAN_EVERY_MS. */
  fullScan: { cpuMs: number; commandMs: number };
  /** Per repeat: queuelens / B on CPU, and on command time (both net of the floor, full SCAN spread in). */
  ratios: Array<{ cpu: number; command: number }>;
  bodyBytes: number;
  seriesPerQueue: number;
  /** Longest event-reader script call (init, commit, forget) from start-up to the end of the window, SLOWLOG µs. */
  eventsScriptMaxUs: number;
  eventsScriptsOver1ms: number;
  load: { start: string; end: string };
}

/** The median of each figure over the windows (calls and the per-command split from the median-CPU window). */
function medianCost(costs: Cost[]): Cost {
  const byCpu = [...costs].sort((x, y) => x.cpuMs - y.cpuMs);
  return {
    ...(byCpu[byCpu.length >> 1] as Cost),
    cpuMs: median(costs.map((c) => c.cpuMs)),
    commandMs: median(costs.map((c) => c.commandMs)),
    callsPerS: median(costs.map((c) => c.callsPerS)),
  };
}

/** A scrape at the start of each 15 s of the window, as Prometheus would. */
const every15s = (scrape: () => Promise<void>) => async (endsAt: number) => {
  for (let t = Date.now(); t < endsAt - 1000; t += WINDOW_S * 1000) {
    await scrape();
    await new Promise((r) => setTimeout(r, Math.max(0, t + WINDOW_S * 1000 - Date.now())));
  }
};

/** One full discovery SCAN pass over the prefix, as the sidecar sends it (COUNT 250, MATCH the meta keys). */
async function fullScan(admin: Redis, prefix: string): Promise<{ cpuMs: number; commandMs: number }> {
  const usec = async () => Number(/^cmdstat_scan:calls=\d+,usec=(\d+)/m.exec((await admin.info('commandstats')) as string)?.[1] ?? 0);
  const [cpu0, scan0] = [await cpuUsec(admin), await usec()];
  let cursor = '0';
  do [cursor] = await admin.scan(cursor, 'MATCH', `${prefix}:*:meta`, 'COUNT', 250);
  while (cursor !== '0');
  const [cpu1, scan1] = [await cpuUsec(admin), await usec()];
  return { cpuMs: (cpu1 - cpu0) / 1000, commandMs: (scan1 - scan0) / 1000 };
}

async function measure(server: TestRedis, size: number): Promise<Row> {
  const loadStart = loadAverage();
  const prefix = `rest${size}`;
  const admin = new Redis({ host: '127.0.0.1', port: server.port, connectionName: 'bench-admin' });
  await seedQueues(admin, prefix, size, Date.now());

  const shared = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null, connectionName: 'baseline' });
  const queues = Array.from({ length: size }, (_, i) => new Queue(queueName(i), { connection: shared, prefix, skipMetasUpdate: true }));
  await Promise.all(queues.map((q) => q.waitUntilReady()));
  // Floor, A and B in turn, REPEATS times: the floor moves by several ms between runs on a shared machine.
  const floors: Cost[] = [];
  const as: Cost[] = [];
  const bs: Cost[] = [];
  const repeats = repeatsOf(size);
  for (let i = 0; i < repeats; i++) {
    floors.push(await window(admin, async () => undefined, LONG_S));
    as.push(
      await window(
        admin,
        every15s(async () => {
          for (const q of queues) await q.getJobCounts();
        }),
        LONG_S,
      ),
    );
    bs.push(
      await window(
        admin,
        every15s(async () => {
          await Promise.all(queues.map((q) => q.getJobCounts()));
        }),
        LONG_S,
      ),
    );
  }
  await Promise.all(queues.map((q) => q.close()));
  shared.disconnect();
  const floor = medianCost(floors);

  // Before change-driven collection: every queue read at every collection (--collect-sweep 0), same settling.
  let before: Cost | undefined;
  if (BEFORE_SIZES.has(size)) {
    const old = await startSidecarProcess({ cli: CLI, redisUrl: server.url, prefix, size, own: `ql${size}old`, extra: ['--collect-sweep', '0'] });
    try {
      await new Promise((r) => setTimeout(r, 30_000));
      before = await window(admin, async () => undefined);
    } finally {
      await old.stop();
    }
  }
  // Every event-reader script call from start-up on (loading, settling, heartbeats) in the slow log: the longest.
  await admin.config('SET', 'slowlog-log-slower-than', '100');
  await admin.config('SET', 'slowlog-max-len', '1000000');
  await admin.slowlog('RESET');
  // Every queue exported and its event state loaded (lag series per queue), then 70 s: the reader's one settling
  // commit per queue, the first collections, and the discovery pass that follows the keys the sidecar created at
  // start-up (its own state); what follows is steady state.
  const sidecar = await startSidecarProcess({ cli: CLI, redisUrl: server.url, prefix, size, own: `ql${size}` });
  const url = sidecar.url;
  try {
    await new Promise((r) => setTimeout(r, 70_000));
    const qls: Cost[] = [];
    for (let i = 0; i < repeats; i++) qls.push(await window(admin, async () => undefined, LONG_S));
    const log = (await admin.call('SLOWLOG', 'GET', '-1')) as Array<[number, number, number, string[]]>;
    const own = log.filter((e) => /^evalsha$/i.test(String(e[3][0])) && e[3].some((a) => String(a).includes(`ql${size}:events:q:`)));
    const eventsScriptMaxUs = Math.max(0, ...own.map((e) => Number(e[2])));
    const bySha = new Map<string, number[]>();
    for (const e of own) bySha.set(String(e[3][1]), [...(bySha.get(String(e[3][1])) ?? []), Number(e[2])]);
    for (const [sha, us] of bySha) console.log(`${size} queues: script ${SCRIPTS.get(sha) ?? sha}: ${us.length} calls over 100 µs, max ${Math.max(...us)} µs`);
    const eventsScriptsOver1ms = own.filter((e) => Number(e[2]) > 1000).length;
    const body = await scrapeUntil(url, () => true, 10_000);
    const one = body.split('\n').filter((l) => !l.startsWith('#') && l.includes(`prefix="${prefix}",queue="`)).length / size;
    const scan = await fullScan(admin, prefix);
    admin.disconnect();
    const ratios = qls.map((q, i) => {
      const f = floors[i] as Cost;
      const b = bs[i] as Cost;
      return {
        cpu: (Math.max(0, q.cpuMs - f.cpuMs) + scan.cpuMs / FULL_SCAN_WINDOWS) / Math.max(0.001, b.cpuMs - f.cpuMs),
        command: (Math.max(0, q.commandMs - f.commandMs) + scan.commandMs / FULL_SCAN_WINDOWS) / Math.max(0.001, b.commandMs - f.commandMs),
      };
    });
    return {
      size,
      floor,
      a: medianCost(as),
      b: medianCost(bs),
      before,
      ql: medianCost(qls),
      fullScan: scan,
      ratios,
      bodyBytes: Buffer.byteLength(body),
      seriesPerQueue: one,
      eventsScriptMaxUs,
      eventsScriptsOver1ms,
      load: { start: loadStart, end: loadAverage() },
    };
  } finally {
    await sidecar.stop();
  }
}

async function main(): Promise<void> {
  const load = loadAverage();
  const rows = await eachSize(SIZES, measure);
  const net = (c: Cost, floor: Cost) => Math.max(0, c.cpuMs - floor.cpuMs);
  const netCmd = (c: Cost, floor: Cost) => Math.max(0, c.commandMs - floor.commandMs);
  const spread = (r: Row) => ({ cpu: r.fullScan.cpuMs / FULL_SCAN_WINDOWS, command: r.fullScan.commandMs / FULL_SCAN_WINDOWS });
  const range = (xs: number[]) => `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
  const body = [
    machineInfo(load),
    '',
    `Redis cost per ${WINDOW_S} s with no job moving, net of the floor measured in the same run (no client but the`,
    "benchmark's own connection); seeded queues (bench/lib/seed.ts, 20 jobs each). Every window lasts",
    `${LONG_S} s and is scaled to ${WINDOW_S} s; floor, A and B are measured in turn (A and B scrape every ${WINDOW_S} s), the`,
    `number of times in the windows column, then queuelens as many times: each figure is the median, the ratio's range is in brackets (window i of queuelens`,
    'against window i of the floor and B). CPU: used_cpu_user + used_cpu_sys of the Redis process. Command time: INFO',
    'commandstats usec of every command, each counted once whether a client or a script ran it (bench/lib/redis-cost.ts:',
    "the scripts' own Lua overhead is left out, which flatters the script-heavy baselines), steadier than CPU on a shared",
    'machine. queuelens runs as the real process with its defaults (collect interval 5 s, event reader on), measured after',
    'it exported every queue, its reader settled and its discovery followed the keys it created at start-up. Discovery',
    `SCANs the keyspace only on evidence of a change, and at least every ${FULL_SCAN_EVERY_MS / 60_000} min: that forced pass is measured`,
    `separately (the same SCAN sent by the benchmark) and spread over the ${FULL_SCAN_WINDOWS} windows of its period, included in the`,
    "queuelens columns and ratios. Calls/s: every command Redis ran, inner script commands included. The reader's scripts:",
    'SLOWLOG (wall time inside Redis) of every event-state script call from the start of the sidecar to the end of its windows.',
    '',
    table(
      [
        'queues',
        'windows',
        'load average (start / end)',
        'floor CPU (ms)',
        'A CPU (ms)',
        'B CPU (ms)',
        'queuelens CPU (ms)',
        'queuelens / B, CPU',
        'floor command time (ms)',
        'B command time (ms)',
        'queuelens command time (ms)',
        'queuelens / B, command time',
        'full SCAN pass CPU / command (ms)',
        'queuelens before CPU (ms)',
        'A calls/s',
        'B calls/s',
        'queuelens before calls/s',
        'queuelens calls/s',
        '/metrics bytes',
        'series per queue',
        'longest reader script (µs)',
        'reader scripts > 1 ms',
      ],
      rows.map((r) => [
        r.size,
        r.ratios.length,
        `${r.load.start} / ${r.load.end}`,
        r.floor.cpuMs.toFixed(1),
        net(r.a, r.floor).toFixed(1),
        net(r.b, r.floor).toFixed(1),
        (net(r.ql, r.floor) + spread(r).cpu).toFixed(1),
        range(r.ratios.map((x) => x.cpu)),
        r.floor.commandMs.toFixed(2),
        netCmd(r.b, r.floor).toFixed(2),
        (netCmd(r.ql, r.floor) + spread(r).command).toFixed(2),
        range(r.ratios.map((x) => x.command)),
        `${r.fullScan.cpuMs.toFixed(1)} / ${r.fullScan.commandMs.toFixed(1)}`,
        r.before ? net(r.before, r.floor).toFixed(1) : 'not run',
        r.a.callsPerS.toFixed(0),
        r.b.callsPerS.toFixed(0),
        r.before ? r.before.callsPerS.toFixed(0) : 'not run',
        r.ql.callsPerS.toFixed(1),
        r.bodyBytes,
        r.seriesPerQueue.toFixed(1),
        r.eventsScriptMaxUs,
        r.eventsScriptsOver1ms,
      ]),
    ),
    '',
    'queuelens before: the same process with `--collect-sweep 0` (every queue read at every collection, as before',
    'change-driven collection), in the same run, one 15 s window (`BENCH_BEFORE_SIZES`, 1,000 only by default: at 10,000',
    'it did not export every queue within 300 s on this shared machine). What remains of queuelens at rest: the sweep of',
    "idle queues (one share of them per pass, each once per `--collect-sweep-idle`), the reader's check of Redis's XADD",
    "count (one INFO, 1 s to 5 s apart) and its one real round a minute, the shard's heartbeat (TIME + HSET a second),",
    "discovery's evidence (two INFO a minute) and its forced SCAN every 10 min, the shared snapshot written each pass,",
    'and CLIENT LIST.',
    '',
    "Where queuelens's Redis time goes at rest (INFO commandstats over its median window; usec per 15 s; a script's",
    'inner commands are counted in its EVALSHA and listed by name as well):',
    '',
    ...rows.flatMap((r) => [
      table(
        ['queues', 'command', 'calls/s', 'Redis time per 15 s (ms)'],
        [...(r.ql.commands ?? new Map<string, { callsPerS: number; usec: number }>())]
          .sort((x, y) => y[1].usec - x[1].usec)
          .slice(0, 12)
          .map(([name, c]) => [r.size, name.replace('|', '\\|'), c.callsPerS.toFixed(2), (c.usec / 1000).toFixed(3)]),
      ),
      '',
    ]),
  ].join('\n');
  writeSection(new URL('../../docs/benchmarks.md', import.meta.url), '## At rest: Redis cost against getJobCounts() exporters (issue 16)', body);
}

await main();
