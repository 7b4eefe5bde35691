// Scale-out benchmark of the event reader, one run on this machine: how fast sidecar processes drain a backlog
// of events spread over 16 queues, for
//  1. one sidecar on standalone Redis (baseline),
//  2. two sidecars on standalone Redis with --events-shards 2 (each reads half the queues),
//  3. one sidecar on a 3-master Redis Cluster (per-queue hash tags: queues on every master, polled per slot).
// The sidecars are started first and hold their leases, then paused (SIGSTOP, lease 60 s) while BullMQ writes the
// backlog, then resumed: the time from SIGCONT until the persisted accounting shows every entry read.
// Run: npm run bench:scaling   (writes the `## Event reader scale-out` section of docs/benchmarks.md)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { freePort } from './lib/free-port.mjs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';

const QUEUES = 16;
const JOBS_PER_QUEUE = Number(process.env.BENCH_JOBS_PER_QUEUE ?? 10_000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const procs = [];
const dirs = [];

async function waitPing(port) {
  for (let i = 0; i < 200; i++) {
    const c = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    const ok = await c
      .connect()
      .then(() => c.ping())
      .then(
        () => true,
        () => false,
      );
    c.disconnect();
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`redis on ${port} did not start`);
}

async function startRedis(extra = []) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ql-bench-'));
  dirs.push(dir);
  procs.push(
    spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], { stdio: 'ignore' }),
  );
  await waitPing(port);
  return port;
}

async function startCluster() {
  const ports = [];
  for (let i = 0; i < 3; i++)
    ports.push(await startRedis(['--cluster-enabled', 'yes', '--cluster-config-file', `nodes.conf`, '--cluster-node-timeout', '2000']));
  const r = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-yes'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stdout + r.stderr);
  for (;;) {
    const ok = await Promise.all(
      ports.map(async (port) => {
        const c = new Redis({ port });
        const s = await c.cluster('INFO');
        c.disconnect();
        return /cluster_state:ok/.test(s);
      }),
    );
    if (ok.every(Boolean)) break;
    await sleep(100);
  }
  return ports;
}

async function sidecar(env, extra = []) {
  const p = spawn(
    process.execPath,
    ['dist/cli/index.js', 'sidecar', '--port', String(await freePort()), '--host', '127.0.0.1', '--collect-interval', '60', '--events-lease', '60', ...extra],
    {
      env: { ...process.env, LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  procs.push(p);
  return p;
}

async function run(label, { client, connection, names, env, replicas, shards }) {
  const own = `bench-${label.replace(/\W+/g, '-')}`;
  // The queues exist before the sidecars start, so their fixed list registers them at once.
  // Event retention above the backlog: nothing is trimmed, every entry must be read.
  const queues = names.map((n) => new Queue(n, { connection, streams: { events: { maxLen: 3 * JOBS_PER_QUEUE } } }));
  for (const q of queues) await q.add('warm', {});
  const keyOf = (n) => `${own}:events:q:bull:${n}`;
  const extra = ['--queues', names.join(','), '--own-prefix', own, '--events-shards', String(shards)];
  const cars = [];
  for (let i = 0; i < replicas; i++) cars.push(await sidecar(env, extra));
  // Wait until every shard lease is held and, with several replicas, split evenly.
  const leaseKeys = shards === 1 ? [`${own}:leader:all`] : Array.from({ length: shards }, (_, i) => `${own}:leader:${i}-of-${shards}`);
  for (;;) {
    const tokens = await Promise.all(leaseKeys.map((k) => client.get(k)));
    const pids = tokens.map((t) => t?.split(':')[2]);
    const registered = (await Promise.all(names.map((n) => client.exists(keyOf(n))))).every((x) => x === 1);
    if (registered && pids.every(Boolean) && new Set(pids).size === Math.min(replicas, shards)) break;
    await sleep(100);
  }
  await sleep(500);
  for (const c of cars) c.kill('SIGSTOP');
  for (let i = 0; i < JOBS_PER_QUEUE; i += 1000) {
    await Promise.all(queues.map((q) => q.addBulk(Array.from({ length: Math.min(1000, JOBS_PER_QUEUE - i) }, () => ({ name: 'noop', data: {} })))));
  }
  const added = async () => {
    let sum = 0;
    for (const n of names) {
      const info = await client.call('XINFO', 'STREAM', `bull:${n}:events`);
      sum += Number(info[info.indexOf('entries-added') + 1]);
    }
    return sum;
  };
  const total = await added();
  const t0 = performance.now();
  for (const c of cars) c.kill('SIGCONT');
  let accounted = 0;
  while (accounted < total) {
    accounted = 0;
    for (const n of names) {
      const [read, seen] = await client.hmget(keyOf(n), 'r|read', 'r|seen');
      accounted += Number(seen ?? read ?? 0);
    }
    await sleep(10);
  }
  const seconds = (performance.now() - t0) / 1000;
  let lost = 0;
  for (const n of names) lost += Number((await client.hget(keyOf(n), 'r|lost')) ?? 0);
  for (const c of cars) c.kill('SIGTERM');
  await Promise.all(cars.map((c) => new Promise((r) => (c.exitCode === null ? c.once('exit', r) : r()))));
  await Promise.all(queues.map((q) => q.close()));
  return { label, entries: total, seconds, rate: Math.round(total / seconds), lost };
}

const results = [];
const load1 = (await import('node:os')).loadavg()[0];
try {
  const port = await startRedis();
  const client = new Redis({ port });
  const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
  const env = { REDIS_URL: `redis://127.0.0.1:${port}` };
  results.push(
    await run('one sidecar, standalone Redis (baseline)', {
      client,
      connection,
      names: Array.from({ length: QUEUES }, (_, i) => `a${i}`),
      env,
      replicas: 1,
      shards: 1,
    }),
  );
  results.push(
    await run('two sidecars, --events-shards 2, standalone Redis', {
      client,
      connection,
      names: Array.from({ length: QUEUES }, (_, i) => `b${i}`),
      env,
      replicas: 2,
      shards: 2,
    }),
  );
  client.disconnect();

  const ports = await startCluster();
  const nodes = ports.map((p) => ({ host: '127.0.0.1', port: p }));
  const cluster = new Cluster(nodes);
  const cenv = { REDIS_URL: 'redis://127.0.0.1:6379', REDIS_CLUSTER_NODES: nodes.map((n) => `${n.host}:${n.port}`).join(',') };
  const cconn = new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: null } });
  results.push(
    await run('one sidecar, 3-master Redis Cluster', {
      client: cluster,
      connection: cconn,
      names: Array.from({ length: QUEUES }, (_, i) => `{c${i}}`),
      env: cenv,
      replicas: 1,
      shards: 1,
    }),
  );
  cluster.disconnect();
  cconn.disconnect();
} finally {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
const load2 = (await import('node:os')).loadavg()[0];

const base = results[0].rate;
const rows = results.map(
  (r) =>
    `| ${r.label} | ${r.entries.toLocaleString('en')} | ${r.seconds.toFixed(2)} | **${r.rate.toLocaleString('en')}** | ${(r.rate / base).toFixed(2)}× | ${r.lost} |`,
);
const section = `## Event reader scale-out

\`npm run bench:scaling\`, ${new Date().toISOString().slice(0, 10)}, one run on this machine (2 vCPUs shared by Node, Redis and
the sidecars; load average ${load1.toFixed(2)} at the start, ${load2.toFixed(2)} at the end). A backlog of ${QUEUES} queues × ${JOBS_PER_QUEUE.toLocaleString('en')}
jobs (addBulk: added + waiting entries) written while the sidecar processes were paused (SIGSTOP, lease 60 s), then
timed from SIGCONT until the persisted accounting shows every entry read.

| setup | entries | seconds | entries/s | vs baseline | lost |
| --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

The reader is client-CPU bound (see Event reader above). Sharding buys CPU, and only when the shards' processes
get CPUs of their own: here two readers, BullMQ's Redis and the other engineers' work share two vCPUs, so a
second process mostly adds scheduling and connections. On Cluster every queue is its own slot, so a poll round is
one non-blocking XREAD and one commit per queue (instead of one XREAD over all 16 streams), sent to all masters at
once: more round trips per entry on the same CPUs. Both are ways to spread load over machines, not to go faster
on one.
`;
const docPath = 'docs/benchmarks.md';
const doc = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '# Benchmarks\n';
const re = /## Event reader scale-out\n[\s\S]*?(?=\n## |$)/;
writeFileSync(docPath, re.test(doc) ? doc.replace(re, section.trimEnd() + '\n') : `${doc.trimEnd()}\n\n${section}`);
process.stdout.write(section);
process.exit(0);
