// One tracing mode of the worker benchmark in its own process (tracing must start before ioredis loads, and modes
// must not share the SDK). argv: <kind: noop|email|export|producer> <mode> <redisUrl> <prefix> <smtpUrl|exportDir> <otlpUrl> [rows]
// mode: off | full | ratio10 | none | unexported, `-async` appended for QUEUELENS_TRACE_CONTEXT=async (AsyncLocalStorage)
// instead of the explicit job context `queuelens worker` runs with. unexported: the worker samples every job as `full`
// does, but its spans go to the SDK's NoopSpanProcessor (created and ended, never batched, encoded or sent): the part of
// tracing's cost that is the SDK's span itself, which no exporter set-up can remove.
// noop/email: a worker that stays up and measures one window per `{"jobs": n}` line on stdin (the n jobs a producer
// process put in the paused queue), answering with one JSON line each; `{"exit": true}` closes it.
// producer: the producer of that worker, in a process of its own as in production (its spans, and the garbage they
// leave, are not the worker's): enqueues n email jobs per `{"enqueue": n}` line and answers when their spans are sent.
// export: one export of <rows> rows, one JSON line, exit.
import { createInterface } from 'node:readline';

const [kind, mode, redisUrl, prefix, peer, otlpUrl, rowsArg] = process.argv.slice(2);
const [tracing, contextManager = 'job'] = mode.split('-');
// WORKER_BENCH_DIST: another build of src/ (e.g. the commit before a change), for A/B runs.
const DIST = process.env.WORKER_BENCH_DIST ?? new URL('../dist', import.meta.url).href;

let flushSpans = async () => {};
if (tracing !== 'off') {
  // Tracing as `queuelens worker` runs it: the register module reads OTEL_* and QUEUELENS_TRACE_CONTEXT, and the SDK
  // builds the exporter and its BatchSpanProcessor with their defaults (batches of 512, a queue of 2,048, every 5 s).
  // Only the endpoint, the sampler and, with --protocol, the encoding are set here.
  Object.assign(process.env, {
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: otlpUrl,
    OTEL_SERVICE_NAME: 'bench',
    OTEL_TRACES_SAMPLER: tracing === 'full' || tracing === 'unexported' ? 'parentbased_always_on' : 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: tracing === 'ratio10' ? '0.1' : '0',
    QUEUELENS_TRACE_CONTEXT: contextManager,
  });
  if (process.env.WORKER_BENCH_PROTOCOL) process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = process.env.WORKER_BENCH_PROTOCOL;
  if (tracing === 'unexported' && kind !== 'producer') {
    // Started as the register module starts it, with the SDK's no-op processor in place of the OTLP pipeline.
    const { NoopSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
    const { startTracing } = await import(DIST + '/tracing/sdk.js');
    startTracing({ serviceName: 'bench', contextManager, spanProcessors: [new NoopSpanProcessor()] });
  } else await import(DIST + '/tracing/register.js');
  const { trace } = await import('@opentelemetry/api');
  const provider = trace.getTracerProvider().getDelegate();
  if (typeof provider.forceFlush !== 'function') throw new Error('tracing did not start: no SDK tracer provider');
  flushSpans = () => provider.forceFlush();
}

const { Producer } = await import(DIST + '/jobs/producer.js');
const { createWorker } = await import(DIST + '/workers/create-worker.js');
const { emailProcessor } = await import(DIST + '/workers/email-processor.js');
const { exportProcessor } = await import(DIST + '/workers/export-processor.js');
const { createLogger } = await import(DIST + '/log/logger.js');
const { shutdownTracing } = await import(DIST + '/tracing/state.js');

const log = createLogger({ level: 'silent' });
const producer = new Producer({ redisUrl, prefix });
const reply = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
/** CPU time of this process (all threads: main, GC, libuv), in µs. */
const cpuMicros = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

// WORKER_BENCH_PROFILE=<file>: a V8 CPU profile of the measured windows only (not start-up or enqueueing).
const profileFile = process.env.WORKER_BENCH_PROFILE;
let session;
const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
let profiling = false;
async function profile(on) {
  if (!profileFile || on === profiling) return;
  profiling = on;
  if (!session) {
    const { Session } = await import('node:inspector');
    session = new Session();
    session.connect();
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 100 });
  }
  if (on) await post('Profiler.start');
  else {
    const { profile: p } = await post('Profiler.stop');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(profileFile, JSON.stringify(p));
  }
}

if (kind === 'export') {
  const n = Number(rowsArg);
  const rssBefore = process.memoryUsage().rss;
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const w = createWorker({ queue: 'export', process: exportProcessor({ dir: peer }).process, redisUrl, prefix, ownPrefix: 'queuelens', log, concurrency: 1 });
  await w.start();
  const job = await producer.enqueueExport({ format: 'csv', rows: n, fileName: 'bench.csv' });
  const t0 = performance.now();
  await new Promise((resolve, reject) => {
    w.worker.on('completed', (j) => j.id === job.id && resolve());
    w.worker.on('failed', (j, err) => j?.id === job.id && reject(err));
  });
  const ms = performance.now() - t0;
  clearInterval(sampler);
  const result = (await producer.queue('export').getJob(job.id)).returnvalue;
  reply({
    rows: result.rows,
    bytes: result.bytes,
    seconds: ms / 1000,
    rowsPerSecond: Math.round(result.rows / (ms / 1000)),
    rssBeforeMB: rssBefore / 2 ** 20,
    peakRssMB: peak / 2 ** 20,
  });
  await w.close();
  await producer.close();
  await shutdownTracing();
  process.exit(0);
}

const queue = producer.queue('email');

if (kind === 'producer') {
  const opts = { removeOnComplete: true, attempts: 1 };
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = JSON.parse(line);
    if (cmd.exit) break;
    const n = cmd.enqueue;
    const t0 = performance.now();
    for (let i = 0; i < n; i += 200) {
      const batch = [];
      for (let j = i; j < Math.min(n, i + 200); j += 1)
        batch.push(producer.enqueueEmail({ template: 'welcome', to: `user-${j}@example.com`, vars: { name: `u${j}` } }, opts));
      await Promise.all(batch);
    }
    const ms = performance.now() - t0;
    await flushSpans();
    reply({ enqueued: n, enqueuePerSecond: Math.round(n / (ms / 1000)) });
  }
  await producer.close();
  await shutdownTracing();
  process.exit(0);
}

const processFn =
  kind === 'email' ? emailProcessor({ smtpUrl: peer, from: 'bench@queuelens.test', maxConnections: 10 }) : { process: async () => ({ ok: true }), close() {} };
// Jobs wait in the paused queue while the producer enqueues them; resuming it opens the window, and the worker
// process stays warm from one window to the next.
await queue.pause();
const w = createWorker({ queue: 'email', process: processFn.process, redisUrl, prefix, ownPrefix: 'queuelens', log, concurrency: 10 });
let settled = 0;
let failed = 0;
let onSettled = () => {};
w.worker.on('completed', () => {
  settled += 1;
  onSettled();
});
w.worker.on('failed', () => {
  settled += 1;
  failed += 1;
  onSettled();
});
await w.start();
// The queue is paused and the worker listening: the producer may start.
reply({ ready: true });

async function window(n) {
  const target = settled + n;
  const failedBefore = failed;
  const done = new Promise((resolve) => (onSettled = () => settled >= target && resolve()));
  await profile(true);
  const t0 = performance.now();
  const c0 = cpuMicros();
  await queue.resume();
  await done;
  // The window closes once the spans of its jobs have left too: the export of every span is charged to its window.
  await flushSpans();
  const ms = performance.now() - t0;
  const cpu = cpuMicros() - c0;
  await profile(false);
  await queue.pause();
  return { jobs: n, failed: failed - failedBefore, seconds: ms / 1000, jobsPerSecond: Math.round(n / (ms / 1000)), cpuMicrosPerJob: cpu / n };
}

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line);
  if (cmd.exit) break;
  reply(await window(cmd.jobs));
}
await w.close();
processFn.close();
await producer.close();
await shutdownTracing();
process.exit(0);
