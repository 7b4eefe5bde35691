// The baselines of bench/scale.ts as processes of their own: a tiny Prometheus exporter that answers every scrape
// with BullMQ's getJobCounts() of every queue, one queue after another (A) or all at once (B), rendered as one
// gauge per queue and state (7 series per queue), gzip when asked. Its RSS and scrape latency are what a naive
// exporter costs at the same size. argv: <redisUrl> <prefix> <queues> <A|B>. Prints its port, then serves until killed.
import { createServer } from 'node:http';
import { gzipSync } from 'node:zlib';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { queueName } from './seed.js';

const [url, prefix, sizeArg, mode] = process.argv.slice(2) as [string, string, string, 'A' | 'B'];
const connection = new Redis(url, { maxRetriesPerRequest: null, connectionName: `baseline-${mode}` });
const queues = Array.from({ length: Number(sizeArg) }, (_, i) => new Queue(queueName(i), { connection, prefix, skipMetasUpdate: true }));
await Promise.all(queues.map((q) => q.waitUntilReady()));

const STATES = ['waiting', 'prioritized', 'delayed', 'active', 'waiting-children', 'completed', 'failed'] as const;

async function body(): Promise<string> {
  const counts: Array<Record<string, number>> = [];
  if (mode === 'A') for (const q of queues) counts.push(await q.getJobCounts(...STATES));
  else counts.push(...(await Promise.all(queues.map((q) => q.getJobCounts(...STATES)))));
  const lines = ['# TYPE bullmq_queue_jobs gauge'];
  counts.forEach((c, i) => {
    for (const s of STATES) lines.push(`bullmq_queue_jobs{prefix="${prefix}",queue="${queues[i]!.name}",state="${s}"} ${c[s] ?? 0}`);
  });
  return `${lines.join('\n')}\n`;
}

const server = createServer((req, res) => {
  req.resume();
  body().then(
    (text) => {
      const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
      const out = gzip ? gzipSync(text) : Buffer.from(text);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': out.length, ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
      res.end(out);
    },
    (err: Error) => {
      res.writeHead(500, { 'content-length': Buffer.byteLength(err.message) });
      res.end(err.message);
    },
  );
});
server.keepAliveTimeout = 600_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
