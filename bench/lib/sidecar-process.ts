// Runs the real `queuelens sidecar` process (dist/) against the seeded Redis, reads its RSS over several
// collections (as deployed, and with node's defaults), then puts /metrics under 50 concurrent scrapers: a lean
// client and autocannon, each also against a bare server answering the same bytes (the floor of the load).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import autocannon from 'autocannon';
import { parseAllDocuments } from 'yaml';
import { freePort } from '../../test/helpers/redis-server.js';
import { burstScrapers, floorServer, type BurstResult } from './scrapers.js';

const CLI = new URL('../../../dist/cli/index.js', import.meta.url).pathname;
const MANIFEST = new URL('../../../deploy/k8s/base/sidecar.yaml', import.meta.url).pathname;
/** RSS is sampled once a second for this long after the first collections: six more collections. */
const RSS_WINDOW_S = 30;
/** The sidecar's default. */
const COLLECT_INTERVAL_S = 5;
const COLLECTIONS_BEFORE_RSS = 3;
const CONNECTIONS = 50;
const DURATION_S = 10;
/** Scrapes per second of each paced scraper: 150 times what Prometheus does at its default 15 s interval. */
const PACED_RATE = 10;

export interface RssReading {
  /** NODE_OPTIONS the sidecar ran with ('' = node's defaults). */
  nodeOptions: string;
  collectionsBefore: number;
  /** Sampled once a second over RSS_WINDOW_S after those collections. */
  lastMb: number;
  maxMb: number;
}

export interface Pair<T> {
  sidecar: T;
  /** The same load against a bare server answering the sidecar's bytes (floorServer()). */
  floor: T;
}

export interface SidecarResult {
  queues: number;
  collectInterval: number;
  rssWindowS: number;
  /** As deployed (NODE_OPTIONS of deploy/k8s/base/sidecar.yaml) and with node's defaults. */
  rss: { deployed: RssReading; defaults: RssReading };
  collectDurationMs: number;
  bodyBytes: number;
  gzipBytes: number;
  connections: number;
  durationS: number;
  pacedRate: number;
  /** burstScrapers(): each scraper `pacedRate` scrapes/s, all at once, gzip. */
  lean: Pair<BurstResult>;
  /** autocannon, the same shape: `pacedRate` requests/s per connection, gzip. */
  paced: Pair<LoadResult>;
  /** autocannon, each connection's next request as soon as the last is answered, gzip. */
  gzip: Pair<LoadResult>;
  /** The same without compression (sidecar only). */
  identity: LoadResult;
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
export function cpuMs(pid: number): number {
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

/** The body as sent (fetch() would decompress it) and its content type. */
function bodyOf(url: string, headers: Record<string, string>): Promise<{ body: Buffer; contentType: string }> {
  return new Promise((resolve, reject) => {
    get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () =>
        res.headers['content-encoding'] === 'gzip'
          ? resolve({ body: Buffer.concat(chunks), contentType: String(res.headers['content-type']) })
          : reject(new Error('/metrics did not answer with gzip')),
      );
    }).on('error', reject);
  });
}

function gauge(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** NODE_OPTIONS the sidecar Deployment sets, so the benchmark runs the process as it is deployed. */
export function deployedNodeOptions(): string {
  return deployedEnvValue('NODE_OPTIONS') ?? '';
}

/** The Deployment's glibc malloc settings (GLIBC_TUNABLES), when it sets them: they move RSS as much as V8's flags. */
function deployedMalloc(): Record<string, string> {
  const tunables = deployedEnvValue('GLIBC_TUNABLES');
  return tunables === undefined ? {} : { GLIBC_TUNABLES: tunables };
}

function deployedEnvValue(name: string): string | undefined {
  const docs = parseAllDocuments(readFileSync(MANIFEST, 'utf8')).map(
    (d) =>
      d.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: Array<{ name: string; env?: Array<{ name: string; value?: string }> }> } } } },
  );
  const container = docs.find((d) => d.kind === 'Deployment')?.spec?.template?.spec?.containers?.find((c) => c.name === 'sidecar');
  if (!container) throw new Error(`no sidecar container in ${MANIFEST}`);
  return container.env?.find((e) => e.name === name)?.value;
}

interface Running {
  pid: number;
  url: string;
  port: number;
  /** The /metrics text once every queue was exported, after `collectionsBefore` collections. */
  body: string;
  collectionsBefore: number;
  stop(): Promise<void>;
}

async function startSidecar(opts: { redisUrl: string; prefix: string; queues: number }, nodeOptions: string): Promise<Running> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/metrics`;
  const args = [
    '--redis-url',
    opts.redisUrl,
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--prefixes',
    opts.prefix,
    '--collect-interval',
    String(COLLECT_INTERVAL_S),
    '--log-level',
    'warn',
  ];
  const env = { ...process.env, ...deployedMalloc(), NODE_OPTIONS: nodeOptions };
  const proc = spawn(process.execPath, [CLI, 'sidecar', ...args], { stdio: ['ignore', 'inherit', 'inherit'], env });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = async () => {
    proc.kill('SIGTERM');
    await exited;
  };
  try {
    // Wait until it exports every queue, then for several collections (each moves the last-collect timestamp).
    const deadline = Date.now() + 120_000 + COLLECTIONS_BEFORE_RSS * COLLECT_INTERVAL_S * 1000;
    const seen = new Set<number>();
    let body = '';
    while (seen.size <= COLLECTIONS_BEFORE_RSS) {
      if (proc.exitCode !== null) throw new Error(`sidecar exited with code ${proc.exitCode}`);
      if (Date.now() > deadline) throw new Error('sidecar did not export every queue within 120 s');
      body = await fetch(url)
        .then((r) => r.text())
        .catch(() => '');
      const exported = gauge(body, `bullmq_exporter_queues{prefix="${opts.prefix}"}`);
      const last = gauge(body, 'bullmq_exporter_last_collect_timestamp_seconds');
      if (exported === opts.queues && last !== undefined) seen.add(last);
      await new Promise((r) => setTimeout(r, 200));
    }
    return { pid: proc.pid!, url, port, body, collectionsBefore: seen.size, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function readRss(s: Running, nodeOptions: string): Promise<RssReading> {
  const samples: number[] = [];
  for (let i = 0; i < RSS_WINDOW_S; i += 1) {
    await new Promise((r) => setTimeout(r, 1000));
    samples.push(statusMb(s.pid, 'VmRSS'));
  }
  return { nodeOptions, collectionsBefore: s.collectionsBefore, lastMb: samples.at(-1)!, maxMb: Math.max(...samples) };
}

export async function measureSidecar(opts: { redisUrl: string; prefix: string; queues: number }): Promise<SidecarResult> {
  // Node's defaults first, on its own, so the two readings do not share the machine.
  const plain = await startSidecar(opts, '');
  const defaults = await readRss(plain, '').finally(() => plain.stop());
  console.log(`sidecar RSS with node's defaults: last ${defaults.lastMb.toFixed(1)} MB, max ${defaults.maxMb.toFixed(1)} MB`);

  const nodeOptions = deployedNodeOptions();
  const s = await startSidecar(opts, nodeOptions);
  try {
    const deployed = await readRss(s, nodeOptions);
    console.log(`sidecar RSS as deployed (NODE_OPTIONS=${nodeOptions}): last ${deployed.lastMb.toFixed(1)} MB, max ${deployed.maxMb.toFixed(1)} MB`);
    const collectDurationMs = (gauge(s.body, 'bullmq_exporter_collect_duration_seconds') ?? NaN) * 1000;

    const gzipHeaders = { accept: 'text/plain', 'accept-encoding': 'gzip' };
    const gzipped = await bodyOf(s.url, gzipHeaders);
    const floor = await floorServer(gzipped.body, { 'content-type': gzipped.contentType, 'content-encoding': 'gzip' });
    const floorUrl = `http://127.0.0.1:${floor.port}/metrics`;
    try {
      const lean = (port: number) =>
        burstScrapers({ port, path: '/metrics', connections: CONNECTIONS, ratePerConnection: PACED_RATE, durationS: DURATION_S, headers: gzipHeaders });
      // Warm-up of both: JIT, socket buffers.
      await load(s.pid, s.url, 2, gzipHeaders);
      await load(floor.pid, floorUrl, 2, gzipHeaders);
      // Sidecar and floor back to back for each kind of load, so drift on the shared machine hits both alike.
      const leanSidecar = await lean(s.port);
      const leanFloor = await lean(floor.port);
      const pacedSidecar = await load(s.pid, s.url, DURATION_S, gzipHeaders, PACED_RATE);
      const pacedFloor = await load(floor.pid, floorUrl, DURATION_S, gzipHeaders, PACED_RATE);
      const gzipSidecar = await load(s.pid, s.url, DURATION_S, gzipHeaders);
      const gzipFloor = await load(floor.pid, floorUrl, DURATION_S, gzipHeaders);
      const identity = await load(s.pid, s.url, DURATION_S, { accept: 'text/plain' });
      return {
        queues: opts.queues,
        collectInterval: COLLECT_INTERVAL_S,
        rssWindowS: RSS_WINDOW_S,
        rss: { deployed, defaults },
        collectDurationMs,
        bodyBytes: Buffer.byteLength(s.body),
        gzipBytes: gzipped.body.length,
        connections: CONNECTIONS,
        durationS: DURATION_S,
        pacedRate: PACED_RATE,
        lean: { sidecar: leanSidecar, floor: leanFloor },
        paced: { sidecar: pacedSidecar, floor: pacedFloor },
        gzip: { sidecar: gzipSidecar, floor: gzipFloor },
        identity,
        rssAfterMb: statusMb(s.pid, 'VmRSS'),
        peakRssMb: statusMb(s.pid, 'VmHWM'),
      };
    } finally {
      await floor.stop();
    }
  } finally {
    await s.stop();
  }
}

/** Resident memory (VmRSS) and its high-water mark (VmHWM) of a process, in MB. */
export function memoryMb(pid: number): { rss: number; hwm: number } {
  return { rss: statusMb(pid, 'VmRSS'), hwm: statusMb(pid, 'VmHWM') };
}

export interface DeployedSidecar {
  pid: number;
  port: number;
  url: string;
  /** NODE_OPTIONS it runs with. */
  nodeOptions: string;
  /** performance.now() when it was spawned. */
  spawnedAt: number;
  exited(): boolean;
  stop(): Promise<void>;
}

/**
 * The real `queuelens sidecar` as the image and the Deployment run it: the image's entry point
 * (`node --import ./dist/tracing/register.js dist/cli/index.js`, Dockerfile) with the Deployment's NODE_OPTIONS
 * (deploy/k8s/base/sidecar.yaml), its defaults, and `extra` options. Returns as soon as it is spawned.
 */
export async function spawnDeployedSidecar(o: {
  redisUrl: string;
  prefix: string;
  own: string;
  extra?: string[];
  /** node flags before the entry point (a profile, a GC trace: BENCH_SIDECAR_NODE_FLAGS in bench/scale.ts). */
  nodeFlags?: string[];
}): Promise<DeployedSidecar> {
  const port = await freePort();
  const nodeOptions = deployedNodeOptions();
  const register = new URL('../../../dist/tracing/register.js', import.meta.url).pathname;
  const args = [...(o.nodeFlags ?? []), '--import', register, CLI, 'sidecar', '--redis-url', o.redisUrl, '--port', String(port), '--host', '127.0.0.1'];
  args.push('--prefixes', o.prefix, '--own-prefix', o.own, '--log-level', 'warn', ...(o.extra ?? []));
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...deployedMalloc(), NODE_OPTIONS: nodeOptions },
  });
  const spawnedAt = performance.now();
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    pid: proc.pid!,
    port,
    url: `http://127.0.0.1:${port}/metrics`,
    nodeOptions,
    spawnedAt,
    exited: () => proc.exitCode !== null || proc.signalCode !== null,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
