// Benchmark of issue 16 at rest (no job moving): what each exporter costs the Redis process per 15 s, the
// scrape interval of Prometheus, at 1,000 and 10,000 queues, in the same run:
//   A  BullMQ getJobCounts() of every queue, one after another, once per scrape (a tiny exporter)
//   B  the same, all queues at once (Promise.all)
//   queuelens  the real `queuelens sidecar` process with its defaults (collector every 5 s, event reader on)
// Redis CPU is the used_cpu_user + used_cpu_sys of the Redis process over the window, net of the floor measured
// in the same run with no client but the benchmark's own connection. Calls/s count every command Redis ran
// (scripts' inner commands included, INFO commandstats). Writes its section of docs/benchmarks.md.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { TestRedis } from '../test/helpers/redis-server.js';
import { loadAverage, machineInfo, table, writeSection } from './lib/report.js';
import { eachSize, scrapeUntil, startSidecarProcess, window, WINDOW_S, type Cost } from './lib/redis-cost.js';
import { queueName, seedQueues } from './lib/seed.js';

const SIZES = (process.env['BENCH_SIZES'] ?? '1000,10000').split(',').map(Number);
/** queuelens is measured over one default discovery interval, so its window holds exactly one SCAN pass. */
const QL_WINDOW_S = 60;
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
  before: Cost;
  ql: Cost;
  bodyBytes: number;
  seriesPerQueue: number;
  /** Longest event-reader script call (init, commit, forget) from start-up to the end of the window, SLOWLOG µs. */
  eventsScriptMaxUs: number;
  eventsScriptsOver1ms: number;
}

async function measure(server: TestRedis, size: number): Promise<Row> {
  const prefix = `rest${size}`;
  const admin = new Redis({ host: '127.0.0.1', port: server.port, connectionName: 'bench-admin' });
  await seedQueues(admin, prefix, size, Date.now());
  // The floor over the same long window as queuelens: a 15 s floor moved by several ms between runs on a shared machine.
  const floor = await window(admin, async () => undefined, QL_WINDOW_S);

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

  // Before change-driven collection: every queue read at every collection (--collect-sweep 0), same settling.
  const old = await startSidecarProcess({ cli: CLI, redisUrl: server.url, prefix, size, own: `ql${size}old`, extra: ['--collect-sweep', '0'] });
  let before: Cost;
  try {
    await new Promise((r) => setTimeout(r, 30_000));
    before = await window(admin, async () => undefined);
  } finally {
    await old.stop();
  }
  // Every event-reader script call from start-up on (loading, settling, heartbeats) in the slow log: the longest.
  await admin.config('SET', 'slowlog-log-slower-than', '100');
  await admin.config('SET', 'slowlog-max-len', '1000000');
  await admin.slowlog('RESET');
  // Every queue exported and its event state loaded (lag series per queue), then 30 s for the reader's one
  // settling commit per queue and the first collections to pass: what follows is steady state.
  const sidecar = await startSidecarProcess({ cli: CLI, redisUrl: server.url, prefix, size, own: `ql${size}` });
  const url = sidecar.url;
  try {
    await new Promise((r) => setTimeout(r, 30_000));
    const ql = await window(admin, async () => undefined, QL_WINDOW_S);
    const log = (await admin.call('SLOWLOG', 'GET', '-1')) as Array<[number, number, number, string[]]>;
    const own = log.filter((e) => /^evalsha$/i.test(String(e[3][0])) && e[3].some((a) => String(a).includes(`ql${size}:events:q:`)));
    const eventsScriptMaxUs = Math.max(0, ...own.map((e) => Number(e[2])));
    const bySha = new Map<string, number[]>();
    for (const e of own) bySha.set(String(e[3][1]), [...(bySha.get(String(e[3][1])) ?? []), Number(e[2])]);
    for (const [sha, us] of bySha) console.log(`${size} queues: script ${SCRIPTS.get(sha) ?? sha}: ${us.length} calls over 100 µs, max ${Math.max(...us)} µs`);
    const eventsScriptsOver1ms = own.filter((e) => Number(e[2]) > 1000).length;
    const body = await scrapeUntil(url, () => true, 10_000);
    const one = body.split('\n').filter((l) => !l.startsWith('#') && l.includes(`prefix="${prefix}",queue="`)).length / size;
    admin.disconnect();
    return { size, floor, a, b, before, ql, bodyBytes: Buffer.byteLength(body), seriesPerQueue: one, eventsScriptMaxUs, eventsScriptsOver1ms };
  } finally {
    await sidecar.stop();
  }
}

async function main(): Promise<void> {
  const load = loadAverage();
  const rows = await eachSize(SIZES, measure);
  const net = (c: Cost, floor: Cost) => Math.max(0, c.cpuMs - floor.cpuMs).toFixed(1);
  const body = [
    machineInfo(load),
    '',
    `Redis process CPU per ${WINDOW_S} s with no job moving, net of the floor measured in the same run (no client but the`,
    "benchmark's own connection); seeded queues (bench/lib/seed.ts, 20 jobs each). A and B scrape once per window.",
    'queuelens runs as the real process with its defaults (collect interval 5 s, event reader on), measured after',
    'it exported every queue and its reader settled. Calls/s: every command Redis ran, inner script commands included.',
    "The reader's scripts: SLOWLOG (wall time inside Redis, so a busy machine can only make them look slower) of every",
    'event-state script call from the start of the sidecar to the end of its window (loading every queue, the one',
    'settling commit per queue, 25 queues per call).',
    `queuelens (after) is measured over ${QL_WINDOW_S} s, one default --discovery-interval, so its window holds one discovery`,
    'SCAN pass, and scaled to 15 s, as is the floor; A, B and queuelens before over 15 s.',
    '',
    table(
      [
        'queues',
        'floor CPU (ms)',
        'A CPU (ms)',
        'B CPU (ms)',
        'queuelens before CPU (ms)',
        'queuelens CPU (ms)',
        'queuelens / B',
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
        r.floor.cpuMs.toFixed(1),
        net(r.a, r.floor),
        net(r.b, r.floor),
        net(r.before, r.floor),
        net(r.ql, r.floor),
        (Math.max(0, r.ql.cpuMs - r.floor.cpuMs) / Math.max(0.001, r.b.cpuMs - r.floor.cpuMs)).toFixed(2),
        r.a.callsPerS.toFixed(0),
        r.b.callsPerS.toFixed(0),
        r.before.callsPerS.toFixed(0),
        r.ql.callsPerS.toFixed(0),
        r.bodyBytes,
        r.seriesPerQueue.toFixed(1),
        r.eventsScriptMaxUs,
        r.eventsScriptsOver1ms,
      ]),
    ),
    '',
    'queuelens before: the same process with `--collect-sweep 0` (every queue read at every collection, as before',
    'change-driven collection), in the same run. What moved: with its defaults the leader reads again only the queues',
    "whose events moved (none here); it sweeps a queue once per `--collect-sweep` (60 s) only while an active job's lock",
    'could expire before the idle sweep (the seeded locks run 2 h), the others once per `--collect-sweep-idle` (600 s),',
    'a share each pass; the read-back reads again only the accounting the leader committed, and everything once per idle',
    "sweep period; the reader polls idle streams 1 s apart at first, then up to 5 s apart. What remains at rest: discovery's",
    'SCAN once a minute over the whole keyspace (about 28,000 keys here; its share is in the table below), those paced XREADs and',
    'the heartbeat, the idle sweep, the shared snapshot written each pass, and CLIENT LIST.',
    '',
    "Where queuelens's Redis time goes at rest (INFO commandstats over its window; usec per 15 s; a script's inner",
    'commands are counted in its EVALSHA and listed by name as well):',
    '',
    ...rows.flatMap((r) => [
      table(
        ['queues', 'command', 'calls/s', 'Redis time per 15 s (ms)'],
        [...(r.ql.commands ?? new Map<string, { callsPerS: number; usec: number }>())]
          .sort((x, y) => y[1].usec - x[1].usec)
          .slice(0, 12)
          .map(([name, c]) => [r.size, name.replace('|', '\\|'), c.callsPerS.toFixed(1), (c.usec / 1000).toFixed(2)]),
      ),
      '',
    ]),
  ].join('\n');
  writeSection(new URL('../../docs/benchmarks.md', import.meta.url), '## At rest: Redis cost against getJobCounts() exporters (issue 16)', body);
}

await main();
