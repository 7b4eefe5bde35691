// The validated configuration of `queuelens worker`: the shared connection options plus the workers' own
// table (SMTP, webhooks, exports, concurrency and rate limits, probes, shutdown); flags and env vars match one to one.
import { clusterPrefix, distinctPrefixes, logLevelOption, ownPrefixOption, prefixOption, redisClusterNodesOption, redisUrlOption } from './common.js';
import { backendOptions, checkedBackend, migrateOption } from './backend-options.js';
import { option, parse, resolveOptions, type ConfigOf } from './options.js';
import { parseAllowEntry } from './webhook-allow.js';

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
  ...backendOptions,
  migrateOption,
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
  option({
    name: 'smtp-from',
    env: 'SMTP_FROM',
    arg: '<address>',
    description: 'From: address of every email',
    default: 'queuelens <noreply@queuelens.local>',
    sensitive: true,
    parse: parse.string,
  }),
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
  option({
    name: 'export-dir',
    env: 'EXPORT_DIR',
    arg: '<dir>',
    description: 'directory export files are written to',
    default: './exports',
    parse: parse.string,
  }),
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
    description:
      'serve GET /livez (every processing loop runs) and /readyz (and Redis answers a PING, or PostgreSQL a SELECT 1, within 0.8 s) on this port, for Kubernetes probes; 0 = off',
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
    description: "job lock time; a crashed worker's job is reclaimed after about this plus the stalled interval",
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
export const resolveWorkerConfig = (raw: Record<string, unknown>): WorkerConfig =>
  checkedBackend(clusterPrefix(distinctPrefixes(resolveOptions(workerOptions, raw))));
