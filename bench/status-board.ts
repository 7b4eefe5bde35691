// Benchmark of issue 7's queue board (what /api/queues, the status page and `queuelens top` read): the cost per
// collection of recording every queue's accounting and building the response, against the baseline of what
// each collection already costs (rendering the same snapshot into the Prometheus gauges), at 10 to 5,000
// queues; the size and serialisation time of /api/queues with and without history; and the memory the
// 15-minute history takes per queue, busy (accounting changes every collection) and idle.
import { JOB_STATES, type CollectionSnapshot, type QueueState } from '../src/domain/queue-snapshot.js';
import { Exposition } from '../src/metrics/exposition.js';
import { QueueMetrics } from '../src/metrics/queue-metrics.js';
import { queueId } from '../src/domain/queue-ref.js';
import { QueueBoard, type BoardAccounting } from '../src/status/queue-board.js';
import { boardAccounting } from '../src/status/event-accounting.js';
import { QueueAccounting as EventAccounting } from '../src/events/accounting.js';
import { loadAverage, machineInfo, median, table, writeSection } from './lib/report.js';

const SIZES = [10, 100, 1_000, 5_000];
const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400, 21_600];
const COLLECTIONS = 80; // more than the 64 kept points: measured with full rings, after thinning starts
const MEASURED = 20;
const SECTION = '## Queue board: /api/queues, status page, top (issue 7)';

function queue(i: number): QueueState {
  const jobs = Object.fromEntries(JOB_STATES.map((s, k) => [s, (i * 7 + k * 13) % 50])) as QueueState['jobs'];
  const name = i % 10 === 9 ? `q${i - 1}-dlq` : `q${i}`;
  return {
    ref: { prefix: 'bull', name },
    dlqOf: name.endsWith('-dlq') ? name.slice(0, -4) : undefined,
    jobs,
    paused: i % 17 === 0,
    oldestWaitingAgeSeconds: (i % 40) * 10,
    delayedOverdue: i % 5,
    oldestActiveAgeSeconds: i % 30,
    orphanedActive: i % 23 === 0 ? 1 : 0,
    workers: i % 4,
    rateLimited: false,
  };
}

function snapshot(queues: QueueState[], at: number, seq: number): CollectionSnapshot {
  return {
    seq,
    ok: true,
    finishedAt: at,
    durationSeconds: 0.01,
    lastSuccessAt: at,
    redisUp: true,
    queues,
    queuesByPrefix: { bull: queues.length },
    queuesDropped: 0,
  };
}

/** Cumulative accounting that grows every collection, as a busy queue's does. */
function accounting(queues: QueueState[], t: number): Map<string, BoardAccounting> {
  const out = new Map<string, BoardAccounting>();
  for (const [i, q] of queues.entries()) {
    const n = t * (10 + (i % 7));
    const hist = () => ({ buckets: BOUNDS.map((_, b) => Math.floor((n * (b + 1)) / BOUNDS.length)), count: n, sum: n * 0.3 });
    out.set(queueId(q.ref), {
      counters: { added: n + 5, completed: n, failed: Math.floor(n / 20), retried: Math.floor(n / 10), stalled: Math.floor(t / 30) },
      wait: hist(),
      processing: hist(),
    });
  }
  return out;
}

interface Row {
  size: number;
  boardMs: number;
  baselineMs: number;
  responseMs: number;
  bytes: number;
  historyMs: number;
  historyBytes: number;
}

async function measure(size: number): Promise<Row> {
  const queues = Array.from({ length: size }, (_, i) => queue(i));
  const board = new QueueBoard({ collectIntervalSeconds: 5, histogramBounds: BOUNDS });
  const metrics = new QueueMetrics(new Exposition());
  const board_: number[] = [];
  const baseline: number[] = [];
  const response: number[] = [];
  const history: number[] = [];
  let bytes = 0;
  let historyBytes = 0;
  for (let t = 0; t < COLLECTIONS; t += 1) {
    const at = 1_700_000_000_000 + t * 5000;
    const s = snapshot(queues, at, t);
    const acc = accounting(queues, t);
    let t0 = performance.now();
    await metrics.update(s);
    const b = performance.now() - t0;
    t0 = performance.now();
    await board.update(s, acc);
    const u = performance.now() - t0;
    if (t < COLLECTIONS - MEASURED) continue;
    baseline.push(b);
    board_.push(u);
    t0 = performance.now();
    const body = JSON.stringify(board.response({ now: at + 100 }));
    response.push(performance.now() - t0);
    bytes = body.length;
    t0 = performance.now();
    const withHistory = JSON.stringify(board.response({ now: at + 100, history: true }));
    history.push(performance.now() - t0);
    historyBytes = withHistory.length;
    // The board computed real windows: a wrong board is not worth timing.
    const first = JSON.parse(body).queues.find((q: { deadLetterOf: string | null }) => q.deadLetterOf === null);
    if (!first?.windows['15m'] || first.windows['15m'].wait.p95 === null) throw new Error('the board produced no 15-minute window');
  }
  return { size, boardMs: median(board_), baselineMs: median(baseline), responseMs: median(response), bytes, historyMs: median(history), historyBytes };
}

/**
 * none: no accounting (events off); busy: accounting changes every collection; idle: it never changes; zero: it is
 * all zeros (a queue the reader follows that never saw a job), folded as the sidecar does (boardAccounting).
 */
async function historyMemory(mode: 'none' | 'busy' | 'idle' | 'zero'): Promise<number> {
  const size = 1_000;
  const queues = Array.from({ length: size }, (_, i) => queue(i));
  const used = () => {
    // Several passes: one full GC can leave garbage of the previous run behind.
    for (let i = 0; i < 4; i += 1) (globalThis as { gc?: () => void }).gc?.();
    return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  };
  const before = used();
  const board = new QueueBoard({ collectIntervalSeconds: 5, histogramBounds: BOUNDS });
  const idle = accounting(queues, 7);
  const zero = boardAccounting(queues.map((q) => ({ queue: q.ref, stats: new EventAccounting().toStats() })));
  const fed = { none: () => undefined, idle: () => idle, zero: () => zero, busy: (t: number) => accounting(queues, t) }[mode];
  for (let t = 0; t < COLLECTIONS; t += 1) await board.update(snapshot(queues, 1_700_000_000_000 + t * 5000, t), fed(t));
  const kb = (used() - before) / 1024 / size;
  if (board.response({ now: 1_700_000_400_000 }).queues.length !== size) throw new Error('board lost queues');
  return kb;
}

if (!(globalThis as { gc?: () => void }).gc) throw new Error('run with node --expose-gc so the memory numbers mean something');
const loadAtStart = loadAverage();
// Memory first, on a fresh heap; then the timings.
const gaugesKb = await historyMemory('none');
const busyKb = await historyMemory('busy');
const idleKb = await historyMemory('idle');
const zeroKb = await historyMemory('zero');
const rows: Row[] = [];
for (const size of SIZES) rows.push(await measure(size));
const fmt = (ms: number) => ms.toFixed(ms < 1 ? 3 : 1);
const body = `${machineInfo(loadAtStart)}
- run: \`npm run bench:status\`; synthetic snapshots (no Redis: the board never talks to it), ${COLLECTIONS} collections per size so every history ring is full and thinning; medians over the last ${MEASURED}

Cost per collection of recording accounting into the board, against the baseline of rendering the same snapshot into the Prometheus gauges (what every collection already does), and of building /api/queues (every queue's 1- and 15-minute windows, quantiles and health):

${table(
  ['queues', 'board.update (ms)', 'baseline: gauges update (ms)', 'ratio', '/api/queues build+JSON (ms)', 'bytes', 'with ?history=1 (ms)', 'bytes'],
  rows.map((r) => [
    r.size,
    fmt(r.boardMs),
    fmt(r.baselineMs),
    (r.boardMs / r.baselineMs).toFixed(2),
    fmt(r.responseMs),
    r.bytes,
    fmt(r.historyMs),
    r.historyBytes,
  ]),
)}

History memory once the 15-minute history is full (64 points per queue, heap + array buffers): **${busyKb.toFixed(1)} KB per queue whose accounting changes at every collection**, **${idleKb.toFixed(1)} KB per idle queue** (accounting unchanged: a point whose counters and histograms equal the previous point's shares its row), **${zeroKb.toFixed(1)} KB per queue that never saw a job** (its totals and row of zeros shared), **${gaugesKb.toFixed(1)} KB per queue without accounting** (events off, or a queue the reader has not seen). At 1,000 queues: ${((busyKb * 1000) / 1024).toFixed(1)} MB all busy, ${((idleKb * 1000) / 1024).toFixed(1)} MB all idle, ${((gaugesKb * 1000) / 1024).toFixed(1)} MB without accounting. The sidecar's RSS (section above) is read over the first minute, before the rings are full; its seeded queues are idle, so at steady state they add the idle figure, and a fleet of busy queues the busy one.
`;
writeSection(new URL('../../docs/benchmarks.md', import.meta.url), SECTION, body);
process.stdout.write(`${SECTION}\n\n${body}`);
