// Instructions Redis spends in the sidecar's two per-busy-queue scripts, this build's against a baseline's, counted by
// valgrind's callgrind in a redis-server it runs: a count that is the same on a busy machine as on a quiet one, where
// the Redis time of bench/with-traffic.ts moves by half between runs (B's own from 17 to 45 ms per 15 s).
//   get-queue-states: calls of 16 queues of the with-traffic layout (bench/lib/seed.ts: waiting, prioritized, delayed,
//     completed, failed and an active job with its lock in each), as the collector sends them.
//   events-commit: calls of 10 queues, each writing 34 accounting fields (the median a busy queue's commit wrote per
//     15 s in the with-traffic run) into a state hash of 50 fields, its stream caught up: the common commit.
// Each script is called once first (a hash it converts is then as a busy queue's is after its first commit), the
// counters zeroed, CALLS calls made and the counters dumped. Before every commit call `r|seen` is set back so that
// nothing counts as lost (the same path every time); those HSETs (10 per call) are in the count of both builds alike.
// The baseline's scripts: BENCH_BASELINE_REV (a git revision, default HEAD), read with git show. Needs valgrind.
// Writes its section of docs/benchmarks.md.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../test/helpers/redis-server.js';
import { LUA_SOURCES } from '../src/redis/lua-embedded.js';
import { loadAverage, machineInfo, table, writeSection } from './lib/report.js';
import { queueName, seedQueues } from './lib/seed.js';

const CALLS = 50;
const REV = process.env['BENCH_BASELINE_REV'] ?? 'HEAD';
const ROOT = new URL('../../', import.meta.url).pathname;

function baselineScript(file: string): string {
  return execFileSync('git', ['show', `${REV}:src/redis/lua/${file}`], { cwd: ROOT, encoding: 'utf8' });
}

/** The instructions (Ir) of the dump named `name` in `dir` (callgrind_control --dump=<name>). */
function dumped(dir: string, name: string): number {
  for (const f of readdirSync(dir)) {
    const text = readFileSync(join(dir, f), 'utf8');
    if (/^desc: Trigger: dump (\S+)$/m.exec(text)?.[1] !== name) continue;
    const m = /^summary: (\d+)/m.exec(text);
    if (m) return Number(m[1]);
  }
  throw new Error(`no callgrind dump named ${name} in ${dir}`);
}

const loadAtStart = loadAverage();
const startedAt = Date.now();
const dir = mkdtempSync(join(tmpdir(), 'ql-callgrind-'));
const port = await freePort();
const server = spawn(
  'valgrind',
  [
    '--tool=callgrind',
    `--callgrind-out-file=${join(dir, 'cg.%p')}`,
    'redis-server',
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ],
  { stdio: 'ignore' },
);
const ctl = (...args: string[]) => execFileSync('callgrind_control', [...args, String(server.pid)], { encoding: 'utf8' });
const redis = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: null, retryStrategy: (n) => (n > 200 ? null : 250) });
try {
  await redis.ping();
  const rows: Array<[string, number, number]> = [];

  // get-queue-states over 16 seeded queues.
  await seedQueues(redis, 'ins', 64, Date.now());
  const bases = Array.from({ length: 16 }, (_, i) => `ins:${queueName(i + 10)}:`);
  const measure = async (name: string, run: () => Promise<unknown>): Promise<number> => {
    await run();
    ctl('--zero');
    for (let k = 0; k < CALLS; k += 1) await run();
    ctl(`--dump=${name}`);
    return dumped(dir, name) / CALLS;
  };
  const gqs = async (lua: string, name: string) => {
    const sha = (await redis.script('LOAD', lua)) as string;
    return measure(name, () => redis.call('EVALSHA_RO', sha, 16, ...bases, 64));
  };
  rows.push([
    'get-queue-states, 16 queues',
    await gqs(baselineScript('get-queue-states-n.lua'), 'gqs-base'),
    await gqs(LUA_SOURCES['get-queue-states-n.lua']!, 'gqs-this'),
  ]);

  // events-commit of 10 busy queues.
  const commit = async (lua: string, name: string) => {
    const qs: Array<{ hash: string; stream: string; cursor: string; fields: string[] }> = [];
    for (let i = 0; i < 10; i += 1) {
      const stream = `ins:${name}${i}:events`;
      const p = redis.pipeline();
      for (let j = 0; j < 900; j += 1)
        p.xadd(stream, 'MAXLEN', '~', 10_000, '*', 'event', 'completed', 'jobId', String(j), 'returnvalue', 'null', 'prev', 'active');
      const ids = ((await p.exec()) ?? []).map(([, v]) => String(v));
      const hash = `ql:events:q:ins:${name}${i}`;
      const held = Array.from({ length: 14 }, (_, f) => [`c|completed|t${f}`, '1']).flat();
      await redis.hset(hash, 'r|gen', '1', 'r|cursor', ids.at(-1)!, ...held);
      const fields = Array.from({ length: 34 }, (_, f) => [`h|wait|first|n-${f}|`, String(f * 7)]).flat();
      qs.push({ hash, stream, cursor: ids.at(-1)!, fields });
    }
    const sha = (await redis.script('LOAD', lua)) as string;
    const args = ['1', '7000', 'hb|all', ...qs.flatMap((q) => [q.stream, q.cursor, q.cursor, '18', String(q.fields.length), ...q.fields])];
    return measure(name, async () => {
      await redis.pipeline(qs.map((q) => ['hset', q.hash, 'r|seen', String(900 - 18)])).exec();
      const out = (await redis.evalsha(sha, qs.length, ...qs.map((q) => q.hash), ...args)) as number[];
      if (out.some((v, i) => i % 3 === 0 && v !== 0)) throw new Error(`${name}: the commit counted entries lost`);
    });
  };
  rows.push([
    'events-commit, 10 queues',
    await commit(baselineScript('events-commit-n.lua'), 'commit-base'),
    await commit(LUA_SOURCES['events-commit-n.lua']!, 'commit-this'),
  ]);

  const f = (x: number) => Math.round(x).toLocaleString('en');
  const body = [
    machineInfo(loadAtStart),
    `- valgrind ${execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim()}; baseline: the scripts of ${REV} (${execFileSync('git', ['rev-parse', '--short', REV], { cwd: ROOT, encoding: 'utf8' }).trim()})`,
    '',
    `\`npm run bench:instructions\`. Instructions of the whole redis-server process per call (callgrind Ir, ${CALLS} calls each, the`,
    'same inputs for both builds): the same on a loaded machine as on a quiet one.',
    '',
    table(
      ['script', 'baseline (Ir per call)', 'this build (Ir per call)', 'this / baseline'],
      rows.map(([name, base, self]) => [name, f(base), f(self), (self / base).toFixed(3)]),
    ),
    '',
    `Run time: ${Math.round((Date.now() - startedAt) / 1000)} s.`,
  ].join('\n');
  writeSection(new URL('../../docs/benchmarks.md', import.meta.url), '## Instructions of the per-busy-queue scripts (issue 16)', body);
  console.log(body);
} finally {
  redis.disconnect();
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  await exited;
  rmSync(dir, { recursive: true, force: true });
}
