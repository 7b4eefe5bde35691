// Runs the real `queuelens sidecar` process (dist/) against the seeded Redis, reads its RSS after a few
// collections, then puts /metrics under concurrent scrapers with autocannon.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import autocannon from 'autocannon';
import { freePort } from '../../test/helpers/redis-server.js';

const CLI = new URL('../../../dist/cli/index.js', import.meta.url).pathname;
/** The sidecar's default. */
const COLLECT_INTERVAL_S = 5;
const COLLECTIONS_BEFORE_RSS = 3;
const CONNECTIONS = 50;
const DURATION_S = 10;
/** Scrapes per second of each paced scraper: 150 times what Prometheus does at its default 15 s interval. */
const PACED_RATE = 10;

export interface SidecarResult {
  queues: number;
  collectInterval: number;
  collectionsBeforeRss: number;
  collectDurationMs: number;
  rssMb: number;
  bodyBytes: number;
  gzipBytes: number;
  connections: number;
  durationS: number;
  pacedRate: number;
  /** Each scraper sends its next request as soon as the last one is answered, with `Accept-Encoding: gzip`. */
  gzip: LoadResult;
  /** The same without compression. */
  identity: LoadResult;
  /** Each scraper sends `pacedRate` requests per second, with gzip. */
  paced: LoadResult;
  rssAfterMb: number;
  peakRssMb: number;
}

export interface LoadResult {
  requests: number;
  non2xx: number;
  errors: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** CPU time of the sidecar process per request: what a scrape costs the server, whoever else wants the CPU. */
  serverCpuMsPerRequest: number;
}

/** user + system CPU time of a process, in ms (from /proc, in clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function load(pid: number, url: string, durationS: number, headers: Record<string, string>, connectionRate?: number): Promise<LoadResult> {
  const cpu0 = cpuMs(pid);
  const r = await autocannon({ url, connections: CONNECTIONS, duration: durationS, headers, ...(connectionRate ? { connectionRate } : {}) });
  const cpu = cpuMs(pid) - cpu0;
  return {
    serverCpuMsPerRequest: cpu / r.requests.total,
    requests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    rps: r.requests.average,
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    max: r.latency.max,
  };
}

function statusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error(`no ${field} for pid ${pid}`);
  return Number(kb) / 1024;
}

/** Size of the body as sent (fetch() would decompress it). */
function bodyBytes(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { headers }, (res) => {
      let n = 0;
      res.on('data', (d: Buffer) => (n += d.length));
      res.on('end', () => (res.headers['content-encoding'] === 'gzip' ? resolve(n) : reject(new Error('/metrics did not answer with gzip'))));
    }).on('error', reject);
  });
}

function gauge(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

export async function measureSidecar(opts: { redisUrl: string; prefix: string; queues: number }): Promise<SidecarResult> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/metrics`;
  const args = ['--redis-url', opts.redisUrl, '--port', String(port), '--host', '127.0.0.1', '--prefixes', opts.prefix, '--collect-interval', String(COLLECT_INTERVAL_S), '--log-level', 'warn'];
  const proc = spawn(process.execPath, [CLI, 'sidecar', ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  try {
    // Wait until it exports every queue, then for several collections (each moves the last-collect timestamp).
    const deadline = Date.now() + 120_000 + COLLECTIONS_BEFORE_RSS * COLLECT_INTERVAL_S * 1000;
    const seen = new Set<number>();
    let body = '';
    while (seen.size <= COLLECTIONS_BEFORE_RSS) {
      if (proc.exitCode !== null) throw new Error(`sidecar exited with code ${proc.exitCode}`);
      if (Date.now() > deadline) throw new Error('sidecar did not export every queue within 120 s');
      body = await fetch(url).then((r) => r.text()).catch(() => '');
      const exported = gauge(body, `bullmq_exporter_queues{prefix="${opts.prefix}"}`);
      const last = gauge(body, 'bullmq_exporter_last_collect_timestamp_seconds');
      if (exported === opts.queues && last !== undefined) seen.add(last);
      await new Promise((r) => setTimeout(r, 200));
    }
    const rssMb = statusMb(proc.pid!, 'VmRSS');
    const collectDurationMs = (gauge(body, 'bullmq_exporter_collect_duration_seconds') ?? NaN) * 1000;

    const gzipHeaders = { accept: 'text/plain', 'accept-encoding': 'gzip' };
    const gzipBytes = await bodyBytes(url, gzipHeaders);
    const pid = proc.pid!;
    await load(pid, url, 2, gzipHeaders); // warm-up: JIT, socket buffers
    const paced = await load(pid, url, DURATION_S, gzipHeaders, PACED_RATE);
    const gzip = await load(pid, url, DURATION_S, gzipHeaders);
    const identity = await load(pid, url, DURATION_S, { accept: 'text/plain' });
    return {
      queues: opts.queues,
      collectInterval: COLLECT_INTERVAL_S,
      collectionsBeforeRss: seen.size,
      collectDurationMs,
      rssMb,
      bodyBytes: Buffer.byteLength(body),
      gzipBytes,
      connections: CONNECTIONS,
      durationS: DURATION_S,
      pacedRate: PACED_RATE,
      gzip,
      identity,
      paced,
      rssAfterMb: statusMb(proc.pid!, 'VmRSS'),
      peakRssMb: statusMb(proc.pid!, 'VmHWM'),
    };
  } finally {
    proc.kill('SIGTERM');
    await exited;
  }
}
