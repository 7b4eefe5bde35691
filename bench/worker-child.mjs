// One benchmark run in its own process (tracing must start before ioredis loads, and runs must not share
// state). argv: <kind: noop|email|export> <tracing: off|full|ratio10> <jobs or rows> <redisUrl> <prefix> [smtpUrl|exportDir] [otlpUrl]
// Prints one JSON line with the measurements.
const [kind, tracing, nArg, redisUrl, prefix, peer, otlpUrl] = process.argv.slice(2);
const n = Number(nArg);

if (tracing !== 'off') {
  const { BatchSpanProcessor, ParentBasedSampler, AlwaysOnSampler, TraceIdRatioBasedSampler } = await import('@opentelemetry/sdk-trace-base');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  const { startTracing } = await import('../dist/tracing/sdk.js');
  startTracing({
    serviceName: 'bench',
    // A queue big enough that nothing is dropped at full speed: dropped spans would flatter the traced runs.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: otlpUrl }), { maxQueueSize: 200_000, maxExportBatchSize: 2048, scheduledDelayMillis: 500 })],
    sampler: new ParentBasedSampler({ root: tracing === 'full' ? new AlwaysOnSampler() : new TraceIdRatioBasedSampler(0.1) }),
  });
}

const { Producer } = await import('../dist/jobs/producer.js');
const { createWorker } = await import('../dist/workers/create-worker.js');
const { emailProcessor } = await import('../dist/workers/email-processor.js');
const { exportProcessor } = await import('../dist/workers/export-processor.js');
const { createLogger } = await import('../dist/log/logger.js');
const { shutdownTracing } = await import('../dist/tracing/state.js');

const log = createLogger({ level: 'silent' });
const producer = new Producer({ redisUrl, prefix });
const out = {};

if (kind === 'export') {
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
  Object.assign(out, { rows: result.rows, bytes: result.bytes, seconds: ms / 1000, rowsPerSecond: Math.round(result.rows / (ms / 1000)), rssBeforeMB: rssBefore / 2 ** 20, peakRssMB: peak / 2 ** 20 });
  await w.close();
} else {
  const processFn = kind === 'email' ? emailProcessor({ smtpUrl: peer, from: 'bench@queuelens.test', maxConnections: 10 }) : { process: async () => ({ ok: true }), close() {} };
  // Producer side first (every job its own traced add), then the worker drains the queue: the two costs apart.
  const opts = { removeOnComplete: true, attempts: 1 };
  const e0 = performance.now();
  for (let i = 0; i < n; i += 200) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 200); j += 1) batch.push(producer.enqueueEmail({ template: 'welcome', to: `user-${j}@example.com`, vars: { name: `u${j}` } }, opts));
    await Promise.all(batch);
  }
  const enqueueMs = performance.now() - e0;
  const w = createWorker({ queue: 'email', process: processFn.process, redisUrl, prefix, ownPrefix: 'queuelens', log, concurrency: 10 });
  let done = 0;
  let failed = 0;
  const finished = new Promise((resolve) => {
    const tick = () => (done + failed === n ? resolve() : undefined);
    w.worker.on('completed', () => { done += 1; tick(); });
    w.worker.on('failed', () => { failed += 1; tick(); });
  });
  const t0 = performance.now();
  await w.start();
  await finished;
  const ms = performance.now() - t0;
  Object.assign(out, { jobs: n, completed: done, failed, seconds: ms / 1000, jobsPerSecond: Math.round(n / (ms / 1000)), enqueuePerSecond: Math.round(n / (enqueueMs / 1000)) });
  await w.close();
  processFn.close();
}
await producer.close();
const f0 = performance.now();
await shutdownTracing();
out.flushSeconds = (performance.now() - f0) / 1000;
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
