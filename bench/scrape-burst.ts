// In-process harness for /metrics under 50 scrapers (issue 16), for iterating on the serving path without Redis: the
// real HTTP surface (buildApp) over the real Exposition, QueueMetrics and EventMetrics at H_N queues (10,000), a
// "collection" every H_CYCLE_MS (500 ms, as prompt collections with traffic): 10% of the queues move (job counts and
// event accounting), every queue's age moves, and the cycle's end sets its duration (invalidate()). The states are
// built before the run, so the harness's own work does not block the loop it measures. Scrapers (bench/lib/scrapers.ts:
// 50 keep-alive connections asking at once every second, gzip) run in a child process for H_S seconds; then the floor
// (a bare server answering the same bytes from another process). The full picture, with Redis and traffic, is
// bench/scale.ts. Run: `npx tsc -p tsconfig.json && npx tsc -p bench/tsconfig.json && cp package.json dist-bench/ &&
// node dist-bench/bench/scrape-burst.js`.
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { QueueAccounting } from '../src/events/accounting.js';
import type { CollectionSnapshot } from '../src/domain/queue-snapshot.js';
import type { QueueEventAccounting } from '../src/events/read-back.js';
import { EventMetrics } from '../src/metrics/event-metrics.js';
import { Exposition } from '../src/metrics/exposition.js';
import { QueueMetrics } from '../src/metrics/queue-metrics.js';
import { buildApp } from '../src/http/app.js';
import { createLogger } from '../src/log/logger.js';
import { floorServer, type BurstResult } from './lib/scrapers.js';
import { loadAverage } from './lib/report.js';
import { benchSnapshot } from './lib/snapshot.js';

const N = Number(process.env['H_N'] ?? 10000);
const SCRAPE_S = Number(process.env['H_S'] ?? 20);
const CYCLE_MS = Number(process.env['H_CYCLE_MS'] ?? 500);
const SCRAPERS = new URL('./lib/scrapers.js', import.meta.url).pathname;

function accounting(extra: number): QueueAccounting {
  const acc = new QueueAccounting();
  for (const c of ['added', 'completed'] as const) for (let k = 0; k < 5 + extra; k += 1) acc.count(c, '');
  for (let k = 0; k < 5 + (extra % 20); k += 1) {
    acc.observe('wait', 'first', '', 5 + k * 37 + extra);
    acc.observe('processing', 'completed', '', 20 + k * 11);
  }
  acc.reader('read', 150 + extra);
  return acc;
}

function world(round: number): { snapshot: CollectionSnapshot; queues: QueueEventAccounting[] } {
  const active = (i: number) => i % 10 === 5;
  const moved = (i: number) => (active(i) ? round : 0);
  const queues = Array.from({ length: N }, (_, i) => i)
    .filter(active)
    .map((i) => ({ queue: { prefix: 'bull', name: `q${i}` }, stats: accounting(moved(i)).toStats() }));
  // Every backlog's age moves at each collection (its own fragment, see queue-metrics.ts).
  const snapshot = benchSnapshot(
    round + 1,
    'bull',
    refs.map((ref, i) => ({ ref, jobs: 1 + moved(i), age: round * 0.5 + (i % 7) })),
  );
  return { snapshot, queues };
}
const refs = Array.from({ length: N }, (_, i) => ({ prefix: 'bull', name: `q${i}` }));

const e = new Exposition();
const qm = new QueueMetrics(e);
const em = new EventMetrics(e);
let round = 0;
// Built before the run: the harness's own synchronous work must not block the loop it measures.
const worlds = Array.from({ length: 24 }, (_, k) => world(k));
async function cycle(): Promise<void> {
  const w = worlds[round++ % worlds.length]!;
  w.snapshot.seq = round;
  await qm.update(w.snapshot);
  await em.update({ queues: w.queues, leader: true });
  qm.setCycle(0.3, 5);
}
await cycle();
const app = await buildApp({
  log: createLogger({ level: 'warn' } as never),
  renderMetrics: (f, gz) => e.render(f, gz),
  health: () => ({ status: 'ok' }) as never,
  readiness: () => ({ status: 'ok' }) as never,
  queues: () => ({}) as never,
});
await app.listen({ port: 0, host: '127.0.0.1' });
const port = (app.server.address() as AddressInfo).port;
const m = await e.render('text', true);
const body = m.body;
let stop = false;
const cycles = (async () => {
  while (!stop) {
    const t = performance.now();
    await cycle();
    await new Promise((r) => setTimeout(r, Math.max(0, CYCLE_MS - (performance.now() - t))));
  }
})();
await new Promise((r) => setTimeout(r, 3000));

function burst(p: number): Promise<BurstResult> {
  const code = `import(${JSON.stringify(SCRAPERS)}).then(async (s) => console.log(JSON.stringify(await s.burstScrapers({ port: ${p}, path: '/metrics', connections: 50, ratePerConnection: 1, durationS: ${SCRAPE_S}, headers: { accept: 'text/plain', 'accept-encoding': 'gzip' } }))))`;
  const proc = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => proc.once('exit', (c) => (c === 0 ? resolve(JSON.parse(out) as BurstResult) : reject(new Error(`client ${c}`)))));
}
const load0 = loadAverage();
const cpu0 = process.cpuUsage();
const r0 = round;
const sidecar = await burst(port);
const cpu = process.cpuUsage(cpu0);
const cyclesDone = round - r0;
stop = true;
await cycles;
await app.close();
const floor = await floorServer(body, { 'content-type': 'text/plain; version=0.0.4', 'content-encoding': 'gzip' });
const f = await burst(floor.port);
await floor.stop();
const l = (b: BurstResult) => `${b.p50} / ${b.p90} / ${b.p99} / ${b.max} (${b.requests}, ${b.errors} err)`;
console.log(
  `gzip=${(body.length / 1e6).toFixed(2)}MB load ${load0} -> ${loadAverage()} cycles ${cyclesDone} cpu ${((cpu.user + cpu.system) / 1000 / SCRAPE_S).toFixed(0)} ms/s | sidecar ${l(sidecar)} | floor ${l(f)}`,
);
process.exit(0);
