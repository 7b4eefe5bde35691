// Worker benchmark: throughput of noop and email jobs with tracing off, at 100% sampling (batching OTLP/HTTP
// exporter to a local receiver) and at 10% parent-based sampling, interleaved in one run; then a 1,000,000-row
// export (rows/s, peak RSS). Writes the `## Workers` section of docs/benchmarks.md.
// Run: npm run build && node bench/workers.mjs [--quick] [--rounds <n>] [--kinds noop,email] [--protocol http/protobuf] [--profile <dir>]
// --quick, --rounds, --kinds and --protocol print the section without writing docs/benchmarks.md.
// --profile: a V8 CPU profile of one window (4 times the usual jobs) per job kind and tracing mode, written to <dir>
// (<kind>-<mode>.cpuprofile; open in Chrome DevTools or summarise with bench/lib/profile-summary.mjs); no report.
import { execFileSync, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { SMTPServer } from 'smtp-server';
import { parse } from 'yaml';

import { loadavg } from 'node:os';
import { freePort } from './lib/free-port.mjs';

const arg = (name) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const quick = process.argv.includes('--quick');
const KINDS = (arg('--kinds') ?? 'noop,email').split(',');
const PROTOCOL = arg('--protocol') ?? 'http/json';
const partial = quick || arg('--rounds') !== undefined || arg('--kinds') !== undefined || arg('--protocol') !== undefined;
const profileDir = arg('--profile');
const loadAtStart = loadavg()[0];
const ROUNDS = Number(arg('--rounds') ?? (quick ? 2 : 41));
// Jobs in one measured window (a third of a second of work): short windows and many rounds, because this box's speed
// moves by ±20% from one second to the next and a round's windows must see the same box.
const JOBS = { noop: quick ? 1000 : 2500, email: quick ? 200 : 500 };
// Windows each process runs before the measured rounds (JIT, connection pools, span pipeline warm).
const WARM_WINDOWS = 2;
const EXPORT_ROWS = quick ? 100_000 : 1_000_000;
const root = fileURLToPath(new URL('..', import.meta.url));
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_') && !k.startsWith('QUEUELENS_')));

// ---- peers: Redis, an SMTP sink that accepts everything, an OTLP receiver that only counts ----
const redisPort = await freePort();
const redisDir = mkdtempSync(join(tmpdir(), 'bench-redis-'));
const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir], {
  stdio: 'ignore',
});
const redisUrl = `redis://127.0.0.1:${redisPort}`;
for (let i = 0; ; i += 1) {
  try {
    execFileSync('redis-cli', ['-p', String(redisPort), 'ping'], { stdio: 'ignore' });
    break;
  } catch {
    if (i > 100) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  onData(stream, _s, cb) {
    stream.on('data', () => {});
    stream.on('end', () => cb());
  },
});
await new Promise((r) => smtp.listen(0, '127.0.0.1', r));
const smtpUrl = `smtp://127.0.0.1:${smtp.server.address().port}`;

// The OTLP receiver runs in its own process (bench/lib/otlp-receiver.mjs says why) and counts spans per URL path.
const otlp = fork(join(root, 'bench/lib/otlp-receiver.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const [{ port: otlpPort }] = await once(otlp, 'message');
const otlpBase = `http://127.0.0.1:${otlpPort}`;
const pendingCounts = new Map();
let countId = 0;
otlp.on('message', ({ id, count }) => {
  pendingCounts.get(id)?.(count);
  pendingCounts.delete(id);
});
/** Spans the receiver has counted for one URL path so far. */
function otlpSpans(path) {
  countId += 1;
  const id = countId;
  return new Promise((resolve) => {
    pendingCounts.set(id, resolve);
    otlp.send({ id, path });
  });
}

/**
 * A worker-child process for one kind and tracing mode (`name` when two processes run the same mode), with, for
 * noop and email, its producer in a second process of the same mode; `window(n)` enqueues n jobs, then measures the
 * worker on them.
 */
function startChild(kind, mode, peer, env = {}, name = mode) {
  const spawnChild = (role) => {
    const path = role === kind ? `/${kind}-${name}/v1/traces` : `/${kind}-${role}-${name}/v1/traces`;
    const p = spawn(
      process.execPath,
      [join(root, 'bench/worker-child.mjs'), role, mode, redisUrl, `bench-${kind}-${name}`, peer, otlpBase + path, String(EXPORT_ROWS)],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
        // The child sets the OTEL_* it needs; none of the caller's may leak in.
        env: { ...cleanEnv, ...(arg('--protocol') ? { WORKER_BENCH_PROTOCOL: PROTOCOL } : {}), ...env },
      },
    );
    const waiting = [];
    createInterface({ input: p.stdout }).on('line', (line) => waiting.shift()?.resolve(JSON.parse(line)));
    const exited = once(p, 'exit').then(([code]) => {
      for (const w of waiting.splice(0)) w.reject(new Error(`${role}/${name} child exited with code ${code}`));
    });
    const answer = () => new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    const ask = (cmd) => {
      const a = answer();
      p.stdin.write(`${JSON.stringify(cmd)}\n`);
      return a;
    };
    const spans = () => otlpSpans(path);
    const close = async () => {
      p.stdin.end(`${JSON.stringify({ exit: true })}\n`);
      await exited;
    };
    return { answer, ask, spans, close };
  };
  const worker = spawnChild(kind);
  if (kind === 'export') return { answer: worker.answer, close: worker.close };
  // The worker pauses the queue before it says it is ready; only then may jobs arrive.
  const ready = worker.answer();
  const producer = spawnChild('producer');
  return {
    async window(n) {
      await ready;
      const { enqueuePerSecond } = await producer.ask({ enqueue: n });
      const before = await worker.spans();
      const r = await worker.ask({ jobs: n });
      if (r.failed > 0) throw new Error(`${kind}/${name}: ${r.failed} of ${n} jobs failed`);
      // The worker's own spans: it flushed them before answering, and the receiver counted them before replying.
      r.spansReceived = (await worker.spans()) - before;
      r.enqueuePerSecond = enqueuePerSecond;
      return r;
    },
    async close() {
      await Promise.all([worker.close(), producer.close()]);
    },
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// none: the SDK running with a sampler that records nothing, the fixed cost of tracing being on at all. unexported:
// every job sampled, spans created and ended into the SDK's NoopSpanProcessor, the floor under `full` that no exporter
// set-up can go below. -async: QUEUELENS_TRACE_CONTEXT=async (AsyncLocalStorage). control: a second untraced process,
// compared like the others: what the method reads when there is nothing to find.
const MODES = ['off', 'full', 'ratio10', 'none', 'unexported', 'full-async', 'control'];
const childMode = (m) => (m === 'control' ? 'off' : m);
const peers = { noop: smtpUrl, email: smtpUrl };

function stopPeers() {
  smtp.close();
  otlp.disconnect();
  redis.kill('SIGTERM');
  rmSync(redisDir, { recursive: true, force: true });
}

if (profileDir) {
  for (const kind of KINDS) {
    for (const mode of ['off', 'full', 'ratio10', 'none']) {
      const c = startChild(kind, mode, smtpUrl, { WORKER_BENCH_PROFILE: join(profileDir, `${kind}-${mode}.cpuprofile`) });
      for (let i = 0; i < WARM_WINDOWS; i += 1) await c.window(JOBS[kind]);
      const r = await c.window(4 * JOBS[kind]);
      process.stderr.write(
        `profile ${kind} ${mode}: ${r.jobsPerSecond} jobs/s, ${r.cpuMicrosPerJob.toFixed(1)} µs CPU/job, ${r.spansReceived} spans (${4 * JOBS[kind]} jobs)\n`,
      );
      await c.close();
    }
  }
  stopPeers();
  process.exit(0);
}

// The processes of a kind's seven modes stay up side by side and take one window at a time, round after round with
// the order rotated: a window is a third of a second, so load from other work on the box falls on every mode alike.
const results = {};
for (const kind of KINDS) {
  results[kind] = Object.fromEntries(MODES.map((m) => [m, []]));
  const children = Object.fromEntries(MODES.map((m) => [m, startChild(kind, childMode(m), peers[kind], {}, m)]));
  for (let w = 0; w < WARM_WINDOWS; w += 1) for (const m of MODES) await children[m].window(JOBS[kind]);
  for (let round = 0; round < ROUNDS; round += 1) {
    for (let k = 0; k < MODES.length; k += 1) {
      const mode = MODES[(round + k) % MODES.length];
      const r = await children[mode].window(JOBS[kind]);
      results[kind][mode].push(r);
      process.stderr.write(
        `${kind} ${mode} round ${round + 1}: ${r.jobsPerSecond} jobs/s, ${r.cpuMicrosPerJob.toFixed(1)} µs CPU/job (enqueue ${r.enqueuePerSecond}/s), ${r.spansReceived} spans\n`,
      );
    }
  }
  await Promise.all(MODES.map((m) => children[m].close()));
}

const exportDir = mkdtempSync(join(tmpdir(), 'bench-export-'));
// Exports, each in a fresh process, alternating between the heap sizing the export worker is deployed with
// (docker-compose.yml's worker-export) and node's defaults: peak RSS moves with when V8 grows its young generation and
// collects, so each is run several times and judged on its highest reading.
const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true });
const deployedNodeOptions = compose.services?.['worker-export']?.environment?.NODE_OPTIONS;
if (typeof deployedNodeOptions !== 'string')
  throw new Error('docker-compose.yml: services.worker-export.environment.NODE_OPTIONS is not set; the export benchmark measures the worker as deployed');
const EXPORT_RUNS = quick ? 1 : 4;
const exportRuns = { deployed: [], defaults: [] };
for (let i = 0; i < EXPORT_RUNS; i += 1) {
  for (const [sizing, nodeOptions] of [
    ['deployed', deployedNodeOptions],
    ['defaults', ''],
  ]) {
    const exporter = startChild('export', 'off', exportDir, { NODE_OPTIONS: nodeOptions });
    const r = await exporter.answer();
    await exporter.close();
    process.stderr.write(`export ${sizing} ${i + 1}: ${r.rowsPerSecond} rows/s, peak RSS ${r.peakRssMB.toFixed(1)} MB\n`);
    exportRuns[sizing].push(r);
  }
}
/** Median rows/s and the highest peak RSS of one heap sizing's runs. */
const exportSummary = (runs) => ({
  median: [...runs].sort((a, b) => a.rowsPerSecond - b.rowsPerSecond)[Math.floor(runs.length / 2)],
  peakRss: Math.max(...runs.map((r) => r.peakRssMB)),
  peaks: runs.map((r) => r.peakRssMB.toFixed(0)).join(', '),
  /** A run that peaked more than 15 MB above the median run. */
  outlier: Math.max(...runs.map((r) => r.peakRssMB)) - median(runs.map((r) => r.peakRssMB)) > 15,
});
const exp = exportSummary(exportRuns.deployed);
const expDefaults = exportSummary(exportRuns.defaults);
stopPeers();
rmSync(exportDir, { recursive: true, force: true });

// ---- report ----
const LABEL = {
  off: 'tracing off (baseline)',
  full: '100% sampling, batching OTLP/HTTP exporter',
  ratio10: '10% parent-based sampling',
  none: 'SDK on, 0% sampling (no target)',
  'full-async': '100%, QUEUELENS_TRACE_CONTEXT=async (no target)',
  unexported: '100%, spans created and ended but never exported (no target)',
  control: 'tracing off, a second process (control)',
};
const med = (kind, m, f) => median(results[kind][m].map(f));
const jps = (r) => r.jobsPerSecond;
const cpu = (r) => r.cpuMicrosPerJob;
// Throughput with tracing as a share of throughput without, from wall time (the target) and from the worker's CPU
// time per job (what the worker could do with a core to itself). Each round's traced windows are compared with that
// round's untraced window, seconds apart, and the median of those ratios is reported.
const perRound = (kind, m, f) => median(results[kind][m].map((r, i) => f(r, results[kind].off[i])));
const wallRatio = (kind, m) => perRound(kind, m, (r, off) => r.jobsPerSecond / off.jobsPerSecond);
const cpuRatio = (kind, m) => perRound(kind, m, (r, off) => off.cpuMicrosPerJob / r.cpuMicrosPerJob);
// Truncated, not rounded: 84.96% must not print as 85.0% next to "NOT met".
const pct = (x) => `${(Math.floor(x * 1000) / 10).toFixed(1)}%`;
/** Middle half of the per-round ratios: how far one round's reading can be trusted. */
const iqr = (kind, m, f) => {
  const s = results[kind][m].map((r, i) => f(r, results[kind].off[i])).sort((a, b) => a - b);
  return `${Math.round(s[Math.floor(s.length / 4)] * 100)}–${Math.round(s[Math.floor((3 * s.length) / 4)] * 100)}`;
};
const range = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[0]}–${s[s.length - 1]}`;
};
const row = (kind) =>
  MODES.map((m) => {
    const runs = results[kind][m];
    const spansPerJob = median(runs.map((r) => r.spansReceived)) / JOBS[kind];
    const wall = m === 'off' ? '100%' : `${pct(wallRatio(kind, m))} (${iqr(kind, m, (r, off) => r.jobsPerSecond / off.jobsPerSecond)})`;
    const byCpu = m === 'off' ? '100%' : `${pct(cpuRatio(kind, m))} (${iqr(kind, m, (r, off) => off.cpuMicrosPerJob / r.cpuMicrosPerJob)})`;
    return `| ${kind} | ${LABEL[m]} | ${med(kind, m, jps)} (${range(runs.map(jps))}) | ${wall} | ${Math.round(med(kind, m, cpu))} (${range(runs.map((r) => Math.round(cpu(r))))}) | ${byCpu} | ${med(kind, m, (r) => r.enqueuePerSecond)} | ${spansPerJob.toFixed(2)} |`;
  }).join('\n');
const verdict = (kind) =>
  `${kind}: ${pct(wallRatio(kind, 'full'))} at 100% sampling (target ≥ 85%: ${wallRatio(kind, 'full') >= 0.85 ? 'met' : 'NOT met'}; by CPU time ${pct(cpuRatio(kind, 'full'))}), ` +
  `${pct(wallRatio(kind, 'ratio10'))} at 10% (target ≥ 95%: ${wallRatio(kind, 'ratio10') >= 0.95 ? 'met' : 'NOT met'}; by CPU time ${pct(cpuRatio(kind, 'ratio10'))})`;
/** Spans a job leaves in the worker at 100% sampling: the consumer span, and the SMTP send's for email. */
const SPANS_PER_JOB = { noop: 1, email: 2 };
function dropped() {
  const short = KINDS.flatMap((k) =>
    ['full', 'full-async'].flatMap((m) => results[k][m].filter((r) => r.spansReceived < r.jobs * SPANS_PER_JOB[k]).map(() => `${k}/${m}`)),
  );
  return short.length === 0
    ? 'Every 100% window delivered all its spans (nothing dropped; spans per job in the last column).'
    : `**Spans were dropped** in ${short.length} of the 100% windows (${[...new Set(short)].join(', ')}): those rows flatter tracing.`;
}
const addedCpu = (kind, m) => Math.round(perRound(kind, m, (r, off) => r.cpuMicrosPerJob - off.cpuMicrosPerJob));
const addedWall = (kind, m) => Math.round(perRound(kind, m, (r, off) => (1 / r.jobsPerSecond - 1 / off.jobsPerSecond) * 1e6));

const section = `## Workers

Measured by \`npm run bench:workers\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version},
Redis, the SMTP sink and the OTLP receiver on the same box (everything shares the cores; 1-minute load average
${loadAtStart.toFixed(1)} at the start and ${loadavg()[0].toFixed(1)} at the end, other work included).

Each tracing mode runs in its own worker process (the SDK is process-wide), fed by a producer process of the same
mode, as an API and its workers are deployed: the producer's work and garbage are not the worker's. The processes of
a job kind stay up and take turns, one window each, for ${ROUNDS} rounds with the order rotated every round (after ${WARM_WINDOWS} warm-up
windows each: JIT, connection pools, span pipeline). A window's producer enqueues ${JOBS.noop.toLocaleString('en-US')} noop or ${JOBS.email.toLocaleString('en-US')} email jobs into
the paused queue (one traced \`add\` each, 200 in flight; enqueue/s is this step) and sends their spans; then the
worker resumes the queue and is measured until the last job is done and the spans of the window have been exported. Windows are short
(a third of a second) and rounds many, because a single process's speed on this box moves by ±20% from one second
to the next; a round's windows see about the same box. Worker concurrency 10, \`removeOnComplete\`. CPU is the worker
process's user + system time (all threads) per job in the window. "vs off" is the median over the rounds of each
window against the same round's untraced window (middle half of the rounds in brackets). The **control** row is a
second untraced process measured the same way: it should read 100%, and its distance from 100% is about how far
any other row can be trusted. Email jobs render the welcome template and send it over a pooled SMTP
connection (10) to a local sink; noop jobs validate their data and return. Tracing is started as \`queuelens worker\`
starts it (the register module; exporter and BatchSpanProcessor from OTEL_* with the SDK's defaults: batches of 512,
a queue of 2,048, every 5 s), exporting over OTLP ${PROTOCOL}${PROTOCOL === 'http/json' ? " (queuelens's default)" : ''} to a local receiver that counts spans; only
the endpoint and the sampler are set. ${dropped()} 100% is \`parentbased_always_on\`; 10% is
\`parentbased_traceidratio\` 0.1: the consumer follows the producer's decision. The 0% row runs the same SDK
with ratio 0: what tracing costs before the first span is recorded, the floor under 10%.
The *never exported* row samples every job like 100% but hands the spans to the SDK's NoopSpanProcessor: created and
ended, never batched, encoded or sent; it is the SDK's span itself, the floor under the 100% row.
Workers pass the job's context on explicitly (\`queuelens worker\`'s default, src/tracing/job-context-manager.ts); the
\`async\` row runs the same with QUEUELENS_TRACE_CONTEXT=async, AsyncLocalStorage, whose promise hooks every promise of
the process pays for.

| jobs | tracing | worker jobs/s, median (range) | vs off | worker CPU µs/job, median (range) | vs off (by CPU) | enqueue/s | worker spans/job |
| --- | --- | --- | --- | --- | --- | --- | --- |
${KINDS.map(row).join('\n')}

Against the targets (wall throughput; the CPU-time reading in brackets): ${KINDS.map(verdict).join('; ')}.
${KINDS.map((k) => `Per ${k} job, tracing adds ${addedCpu(k, 'full')} µs of worker CPU at 100% sampling and ${addedCpu(k, 'ratio10')} µs at 10% (wall: ${addedWall(k, 'full')} and ${addedWall(k, 'ratio10')} µs); at 100%, ${addedCpu(k, 'unexported')} µs with spans created and ended but never exported (${pct(wallRatio(k, 'unexported'))} of untraced throughput: the most any exporter set-up could reach); with AsyncLocalStorage ${addedCpu(k, 'full-async')} µs at 100%.`).join('\n')}
A job doing real work pays about the same microseconds, so the share shrinks as the work grows; noop jobs are the
worst case, the spans are most of their work.

Export of ${EXPORT_ROWS.toLocaleString('en-US')} rows to CSV (synthetic source, chunks of 1,000 rows, one write and one span each; tracing off),
${EXPORT_RUNS} runs of each heap sizing, each in a fresh process, RSS sampled every 50 ms. As deployed (NODE_OPTIONS=\`${deployedNodeOptions}\`, docker-compose.yml's
worker-export): **${exp.median.rowsPerSecond.toLocaleString('en-US')} rows/s** (median; ${exp.median.seconds.toFixed(1)} s, ${(exp.median.bytes / 2 ** 20).toFixed(0)} MiB), RSS ${exp.median.rssBeforeMB.toFixed(0)} MB before and
**${exp.peakRss.toFixed(0)} MB peak**, the highest of the runs (${exp.peaks} MB; target ≤ 150 MB: ${exp.peakRss <= 150 ? 'met' : 'NOT met'}). With node's defaults:
${expDefaults.median.rowsPerSecond.toLocaleString('en-US')} rows/s, peak ${expDefaults.peakRss.toFixed(0)} MB (${expDefaults.peaks} MB)${
  expDefaults.outlier
    ? `: the young generation grows to its
largest size under the export's allocation rate and the old one fills with short-lived rows before a full collection,
so some runs peak well above the rest`
    : ''
}.
`;

if (partial) {
  process.stdout.write(section);
} else {
  const file = join(root, 'docs/benchmarks.md');
  let doc = existsSync(file)
    ? readFileSync(file, 'utf8')
    : '# Benchmarks\n\nEach section is written by its benchmark under `bench/`; numbers are from one run on the machine named in it.\n';
  const re = /## Workers\n[\s\S]*?(?=\n## |$)/;
  doc = re.test(doc) ? doc.replace(re, section.trimEnd() + '\n') : `${doc.trimEnd()}\n\n${section}`;
  writeFileSync(file, doc);
  process.stdout.write(section);
}
process.exit(0);
