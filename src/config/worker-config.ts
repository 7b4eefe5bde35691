// The validated configuration of the worker-side commands: `worker`, `enqueue`, `loadgen` and `dlq`.
// Each command takes the shared connection options plus its own table; flags and env vars match one to one.
import { SCENARIOS } from '../jobs/loadgen-scenarios.js';
import { parseAllowEntry } from '../workers/ssrf-guard.js';
import { clusterPrefixProblem } from '../redis/slots.js';
import { logLevelOption, ownPrefixOption, redisClusterNodesOption, redisUrlOption } from './common.js';
import { ConfigError, option, parse, resolveOptions, type ConfigOf } from './options.js';

export interface RateLimit {
  max: number;
  durationMs: number;
}

/** `<jobs>/<seconds>`, e.g. `50/1` = at most 50 jobs started per second. */
function rateLimit(raw: string): RateLimit {
  const m = /^\s*(\d+)\s*\/\s*(\d+(?:\.\d+)?)\s*$/.exec(raw);
  const max = Number(m?.[1]);
  const seconds = Number(m?.[2]);
  if (!m || max < 1 || seconds <= 0) throw new Error('expected <jobs>/<seconds>, e.g. 50/1 for 50 jobs a second');
  return { max, durationMs: Math.round(seconds * 1000) };
}

export const prefixOption = option({
  name: 'prefix',
  env: 'QUEUELENS_PREFIX',
  arg: '<prefix>',
  description: 'BullMQ key prefix of the queues; with --redis-cluster-nodes it needs a hash tag, e.g. {bull}',
  default: 'bull',
  parse: (raw: string) => {
    if (/[\s*?[\]]/.test(raw) || raw === '') throw new Error('expected a non-empty prefix without spaces or glob characters (* ? [ ])');
    return raw;
  },
});

function perQueue<Q extends string>(queue: Q, concurrency: string) {
  const upper = queue.toUpperCase();
  return [
    option({
      name: `${queue}-concurrency` as `${Q}-concurrency`,
      env: `${upper}_CONCURRENCY`,
      arg: '<n>',
      description: `jobs of the ${queue} queue processed at once by this process`,
      default: concurrency,
      parse: parse.number({ min: 1, max: 10_000, integer: true }),
    }),
    option({
      name: `${queue}-rate-limit` as `${Q}-rate-limit`,
      env: `${upper}_RATE_LIMIT`,
      arg: '<jobs/seconds>',
      description: `most ${queue} jobs started per period across all workers, e.g. 50/1 (unset = unlimited)`,
      parse: rateLimit,
    }),
  ] as const;
}

export const workerOptions = [
  redisUrlOption,
  redisClusterNodesOption,
  prefixOption,
  ownPrefixOption,
  option({
    name: 'smtp-url',
    env: 'SMTP_URL',
    arg: '<url>',
    description: 'SMTP server the email worker sends through, smtp:// or smtps:// (may carry user and password)',
    default: 'smtp://127.0.0.1:1025',
    sensitive: true,
    parse: parse.url(['smtp:', 'smtps:']),
  }),
  option({ name: 'smtp-from', env: 'SMTP_FROM', arg: '<address>', description: 'From: address of every email', default: 'queuelens <noreply@queuelens.local>', sensitive: true, parse: parse.string }),
  option({
    name: 'webhook-secret',
    env: 'WEBHOOK_SECRET',
    arg: '<secret>',
    description: 'HMAC-SHA256 key for webhook signatures when a job carries none',
    sensitive: true,
    parse: parse.string,
  }),
  option({
    name: 'webhook-timeout',
    env: 'WEBHOOK_TIMEOUT',
    arg: '<seconds>',
    description: 'seconds a webhook delivery may take before it counts as failed and is retried',
    default: '10',
    parse: parse.seconds(0.05, 600),
  }),
  option({
    name: 'webhook-allow',
    env: 'WEBHOOK_ALLOW',
    arg: '<list>',
    description: 'hosts or CIDR ranges webhooks may reach although private/loopback/link-local (SSRF guard), e.g. 127.0.0.1/32,hooks.internal',
    parse: (raw: string) => {
      const list = parse.list(raw);
      for (const entry of list) parseAllowEntry(entry);
      return list;
    },
  }),
  option({ name: 'export-dir', env: 'EXPORT_DIR', arg: '<dir>', description: 'directory export files are written to', default: './exports', parse: parse.string }),
  option({
    name: 'export-max-bytes',
    env: 'EXPORT_MAX_BYTES',
    arg: '<bytes>',
    description: 'largest export file; an export that would grow past it fails for good and leaves no file',
    default: '1073741824',
    parse: parse.number({ min: 1, max: Number.MAX_SAFE_INTEGER, integer: true }),
  }),
  ...perQueue('email', '10'),
  ...perQueue('webhook', '20'),
  ...perQueue('export', '1'),
  option({
    name: 'health-port',
    env: 'QUEUELENS_HEALTH_PORT',
    arg: '<port>',
    description: 'serve GET /livez (every processing loop runs) and /readyz (and Redis answers a PING within 0.8 s) on this port, for Kubernetes probes; 0 = off',
    default: '0',
    parse: parse.number({ min: 0, max: 65_535, integer: true }),
  }),
  option({
    name: 'health-host',
    env: 'QUEUELENS_HEALTH_HOST',
    arg: '<host>',
    description: 'address the health port listens on',
    default: '0.0.0.0',
    parse: parse.string,
  }),
  option({
    name: 'shutdown-timeout',
    env: 'QUEUELENS_SHUTDOWN_TIMEOUT',
    arg: '<seconds>',
    description: 'on SIGTERM, seconds in-flight jobs get to finish before the process exits anyway',
    default: '30',
    parse: parse.seconds(0.1, 3600),
  }),
  option({
    name: 'lock-duration',
    env: 'QUEUELENS_LOCK_DURATION',
    arg: '<seconds>',
    description: 'job lock time; a crashed worker\'s job is reclaimed after about this plus the stalled interval',
    default: '30',
    parse: parse.seconds(0.2, 3600),
  }),
  option({
    name: 'stalled-interval',
    env: 'QUEUELENS_STALLED_INTERVAL',
    arg: '<seconds>',
    description: 'seconds between checks for jobs whose worker died',
    default: '30',
    parse: parse.seconds(0.2, 3600),
  }),
  logLevelOption,
] as const;
export type WorkerConfig = ConfigOf<typeof workerOptions>;
export const resolveWorkerConfig = (raw: Record<string, unknown>): WorkerConfig => clusterPrefix(distinctPrefixes(resolveOptions(workerOptions, raw)));

export const enqueueOptions = [
  redisUrlOption,
  redisClusterNodesOption,
  prefixOption,
  option({ name: 'data', env: 'QUEUELENS_JOB_DATA', arg: '<json>', description: 'job data as JSON', sensitive: true, parse: json }),
  option({ name: 'name', env: 'QUEUELENS_JOB_NAME', arg: '<name>', description: 'job name (defaults to the queue name)', parse: parse.string }),
  option({
    name: 'idempotency-key',
    env: 'QUEUELENS_IDEMPOTENCY_KEY',
    arg: '<key>',
    description: 'enqueueing twice with the same key creates one job',
    sensitive: true,
    parse: parse.string,
  }),
  option({ name: 'delay', env: 'QUEUELENS_JOB_DELAY', arg: '<seconds>', description: 'seconds before the job may run', parse: parse.seconds(0, 365 * 86_400) }),
  option({ name: 'attempts', env: 'QUEUELENS_JOB_ATTEMPTS', arg: '<n>', description: 'attempts before dead-lettering (default per queue)', parse: parse.number({ min: 1, max: 1000, integer: true }) }),
  logLevelOption,
] as const;
export type EnqueueConfig = ConfigOf<typeof enqueueOptions>;
export const resolveEnqueueConfig = (raw: Record<string, unknown>): EnqueueConfig => clusterPrefix(resolveOptions(enqueueOptions, raw));

export const loadgenOptions = [
  redisUrlOption,
  redisClusterNodesOption,
  prefixOption,
  option({
    name: 'scenario',
    env: 'LOADGEN_SCENARIO',
    arg: '<name>',
    description: `what to send: ${SCENARIOS.join(', ')} (docs/monitoring.md lists what each makes fire)`,
    default: 'mixed',
    parse: parse.oneOf(SCENARIOS),
  }),
  option({ name: 'rate', env: 'LOADGEN_RATE', arg: '<jobs/s>', description: 'jobs enqueued per second, spread over the queues', default: '20', parse: parse.number({ min: 0.1, max: 100_000 }) }),
  option({ name: 'duration', env: 'LOADGEN_DURATION', arg: '<seconds>', description: 'how long to run', default: '60', parse: parse.seconds(0.1, 7 * 86_400) }),
  option({
    name: 'failure-share',
    env: 'LOADGEN_FAILURE_SHARE',
    arg: '<0..1>',
    description: 'share of jobs built to fail (unknown mailbox, webhook answering 500)',
    default: '0.05',
    parse: parse.number({ min: 0, max: 1 }),
  }),
  option({
    name: 'mix',
    env: 'LOADGEN_MIX',
    arg: '<list>',
    description: 'weights per queue, e.g. email=6,webhook=3,export=1',
    default: 'email=6,webhook=3,export=1',
    parse: mix,
  }),
  option({
    name: 'webhook-target',
    env: 'LOADGEN_WEBHOOK_TARGET',
    arg: '<url>',
    description: 'URL the generated webhook jobs post to',
    default: 'http://127.0.0.1:9999/hook',
    sensitive: true,
    parse: parse.url(['http:', 'https:']),
  }),
  option({ name: 'export-rows', env: 'LOADGEN_EXPORT_ROWS', arg: '<n>', description: 'rows per generated export', default: '1000', parse: parse.number({ min: 0, max: 100_000_000, integer: true }) }),
  logLevelOption,
] as const;
export type LoadgenConfig = ConfigOf<typeof loadgenOptions>;
export const resolveLoadgenConfig = (raw: Record<string, unknown>): LoadgenConfig => clusterPrefix(resolveOptions(loadgenOptions, raw));

export const dlqOptions = [
  redisUrlOption,
  redisClusterNodesOption,
  prefixOption,
  ownPrefixOption,
  option({ name: 'id', env: 'QUEUELENS_DLQ_ID', arg: '<list>', description: 'only these dead-letter job ids (comma-separated)', parse: parse.list }),
  option({
    name: 'since',
    env: 'QUEUELENS_DLQ_SINCE',
    arg: '<time>',
    description: 'only jobs dead-lettered at or after this time: ISO date or a duration back from now (30m, 2h, 7d)',
    parse: since,
  }),
  option({ name: 'all', env: 'QUEUELENS_DLQ_ALL', description: 'act on every dead-lettered job (required when neither --id nor --since is given)', default: 'false', parse: parse.boolean }),
  option({ name: 'dry-run', env: 'QUEUELENS_DLQ_DRY_RUN', description: 'say what would happen and change nothing', default: 'false', parse: parse.boolean }),
  option({ name: 'limit', env: 'QUEUELENS_DLQ_LIMIT', arg: '<n>', description: 'most jobs `list` prints', default: '50', parse: parse.number({ min: 1, max: 1_000_000, integer: true }) }),
  logLevelOption,
] as const;
export type DlqConfig = ConfigOf<typeof dlqOptions>;
export const resolveDlqConfig = (raw: Record<string, unknown>): DlqConfig => clusterPrefix(distinctPrefixes(resolveOptions(dlqOptions, raw)));

/** queuelens's own keys must never land inside the BullMQ prefix it works on. */
function distinctPrefixes<C extends { prefix: string; ownPrefix: string }>(cfg: C): C {
  if (cfg.ownPrefix === cfg.prefix) throw new ConfigError(`invalid --own-prefix (QUEUELENS_OWN_PREFIX) ${JSON.stringify(cfg.ownPrefix)}: must differ from --prefix (QUEUELENS_PREFIX)`);
  return cfg;
}

/** On a Redis Cluster, a prefix without a hash tag would fail at the first BullMQ script: refuse it before connecting. */
function clusterPrefix<C extends { prefix: string; redisClusterNodes?: string[] }>(cfg: C): C {
  const problem = cfg.redisClusterNodes?.length ? clusterPrefixProblem(cfg.prefix) : undefined;
  if (problem) throw new ConfigError(`invalid --prefix (QUEUELENS_PREFIX) ${JSON.stringify(cfg.prefix)} with --redis-cluster-nodes (REDIS_CLUSTER_NODES): ${problem}`);
  return cfg;
}

function json(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    throw new Error('expected valid JSON, e.g. \'{"to":"a@example.com"}\'');
  }
}

function mix(raw: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of parse.list(raw)) {
    const m = /^(email|webhook|export)=(\d+(?:\.\d+)?)$/.exec(part);
    if (!m) throw new Error('expected queue=weight pairs from email, webhook, export, e.g. email=6,webhook=3,export=1');
    out[m[1] as string] = Number(m[2]);
  }
  if (Object.values(out).every((w) => w === 0)) throw new Error('expected at least one weight above 0');
  return out;
}

/** An ISO time (epoch ms), or a duration back from now, resolved later against Redis's clock (resolveSince). */
export type Since = { at: number } | { agoMs: number };

function since(raw: string): Since {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(raw.trim());
  if (m) return { agoMs: Number(m[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86_400e3 }[m[2] as 's' | 'm' | 'h' | 'd'] };
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new Error('expected an ISO time (2026-11-24T03:00:00Z) or a duration such as 30m, 2h, 7d');
  return { at: t };
}

/** Epoch ms of a --since, a duration counted back from `now` (Redis's clock, which stamps dead letters). */
export function resolveSince(s: Since | undefined, now: number): number | undefined {
  if (s === undefined) return undefined;
  return 'at' in s ? s.at : now - s.agoMs;
}

export type TraceContextMode = 'job' | 'async';

export interface TracingEnv {
  exportEnabled: boolean;
  serviceName: string;
  /**
   * How the active span follows async code: `job` (worker processes: the job's context is passed on explicitly,
   * no AsyncLocalStorage), `async` (AsyncLocalStorage: everything after an `await` keeps its parent, at ~10% of a
   * worker's throughput on Node 20). From QUEUELENS_TRACE_CONTEXT; default `job` for `queuelens worker`, `async` otherwise.
   */
  contextManager: TraceContextMode;
  /**
   * The OTLP encoding of exported spans: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL, else
   * `http/json`, not the SDK's `http/protobuf`: encoding and sending a span costs a worker ~5 µs as JSON and ~11.5 µs
   * as protobuf with the exporters this SDK ships (docs/benchmarks.md, Workers). Collectors take both on /v1/traces.
   */
  tracesProtocol: OtlpProtocol;
  /** OTEL_NODE_RESOURCE_DETECTORS as a list (`env`, `host`, `os`, `process`, `serviceinstance`, `all`, `none`); unset = the SDK's default. */
  resourceDetectors?: string[];
  /** Where spans go (the traces endpoint, else the base endpoint); undefined when nothing is exported. */
  endpoint?: { variable: string; url: URL };
}

const OTLP_PROTOCOLS = ['http/json', 'http/protobuf', 'grpc'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/**
 * OTEL_* variables are read by the OpenTelemetry SDK itself; queuelens only needs to know whether to export, how
 * the context travels and which OTLP encoding to default to. Read by the register module before the CLI exists, so there is no flag: like OTEL_*, env only.
 */
export function tracingEnv(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = process.argv): TracingEnv {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const raw = env.QUEUELENS_TRACE_CONTEXT?.trim();
  if (raw && raw !== 'job' && raw !== 'async') {
    throw new ConfigError(`QUEUELENS_TRACE_CONTEXT must be "job" or "async" (got ${JSON.stringify(raw)}); unset it for the default`);
  }
  // Empty counts as unset, as the SDK reads it.
  const protocolVar = ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL'].find((k) => env[k]?.trim());
  const protocol = protocolVar ? env[protocolVar]!.trim() : 'http/json';
  if (!(OTLP_PROTOCOLS as readonly string[]).includes(protocol)) {
    // The SDK would warn and fall back to protobuf: a collector set up for something else would see nothing.
    throw new ConfigError(`${protocolVar} must be one of ${OTLP_PROTOCOLS.join(', ')} (got ${JSON.stringify(protocol)}); unset it for http/json`);
  }
  // argv: [node, script, subcommand, ...]
  const isWorker = argv[2] === 'worker';
  const exportEnabled = Boolean(endpoint) && env.OTEL_SDK_DISABLED !== 'true' && env.OTEL_TRACES_EXPORTER !== 'none';
  const variable = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  let url: URL | undefined;
  if (exportEnabled) {
    // The SDK silently falls back to http://localhost:4318 for an endpoint that is not a URL: spans would vanish.
    url = URL.canParse(endpoint!.trim()) ? new URL(endpoint!.trim()) : undefined;
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new ConfigError(`${variable} must be an http:// or https:// URL such as http://otel-collector:4318 (got ${JSON.stringify(endpoint)}); unset it to trace nothing`);
    }
  }
  return {
    exportEnabled,
    ...(url ? { endpoint: { variable, url } } : {}),
    serviceName: env.OTEL_SERVICE_NAME ?? 'queuelens',
    contextManager: (raw as TraceContextMode | undefined) || (isWorker ? 'job' : 'async'),
    tracesProtocol: protocol as OtlpProtocol,
    resourceDetectors: env.OTEL_NODE_RESOURCE_DETECTORS?.trim()
      ? env.OTEL_NODE_RESOURCE_DETECTORS.split(',').map((d) => d.trim()).filter(Boolean)
      : undefined,
  };
}
