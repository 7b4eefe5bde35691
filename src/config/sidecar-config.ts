// The sidecar's validated configuration.
import { isIP } from 'node:net';
import { checkedBackend } from './backend-options.js';
import { logLevelOption, ownPrefixOption, postgresOptions, prefixesOption, redisClusterNodesOption, redisUrlOption } from './common.js';
import { ConfigError, option, parse, resolveOptions, type ConfigOf } from './options.js';

/**
 * Fastify's trustProxy, by address, CIDR or proxy-addr's names (loopback, linklocal, uniquelocal). Not a hop count:
 * Fastify 5 ignores one (it cannot tell a proxy from a client naming hops of its own), so one is refused here.
 */
export function parseTrustProxy(raw: string): string[] {
  if (/^\s*\d+\s*$/.test(raw))
    throw new Error("expected the proxies' addresses or CIDRs (e.g. 10.0.0.0/8,::1), not a hop count: Fastify does not trust X-Forwarded-For by hop count");
  const list = parse.list(raw);
  for (const entry of list) {
    const [address = '', bits, extra] = entry.split('/');
    const family = isIP(address);
    const named = ['loopback', 'linklocal', 'uniquelocal'].includes(entry);
    const bitsOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
    if (!named && (family === 0 || !bitsOk || extra !== undefined))
      throw new Error(`expected addresses or CIDRs (e.g. 10.0.0.0/8,::1); ${JSON.stringify(entry)} is neither`);
  }
  return list;
}

/**
 * Where the latency histograms are rendered (--histograms): per queue (the default), per prefix only (fleets: the
 * queue label is absent, so every query that sums by queue keeps working and reads the prefix), or not at all.
 */
export const HISTOGRAM_MODES = ['per-queue', 'per-prefix', 'off'] as const;
export type HistogramMode = (typeof HISTOGRAM_MODES)[number];

export const sidecarOptions = [
  ...postgresOptions,
  redisUrlOption,
  redisClusterNodesOption,
  option({ name: 'port', env: 'QUEUELENS_PORT', arg: '<port>', description: 'HTTP port for /metrics and /health', default: '9487', parse: parse.port }),
  option({ name: 'host', env: 'QUEUELENS_HOST', arg: '<host>', description: 'address to listen on', default: '0.0.0.0', parse: parse.string }),
  prefixesOption,
  option({
    name: 'queues',
    env: 'QUEUELENS_QUEUES',
    arg: '<list>',
    description: "fixed comma-separated queue names (skips discovery); unset = discover them (SCAN on Redis, the schema's meta table on PostgreSQL)",
    parse: (raw: string) => {
      const list = parse.list(raw);
      for (const q of list) if (q.includes(':')) throw new Error(`queue name ${JSON.stringify(q)} contains ':', which BullMQ does not allow`);
      return list;
    },
  }),
  option({
    name: 'collect-interval',
    env: 'QUEUELENS_COLLECT_INTERVAL',
    arg: '<seconds>',
    description: 'seconds between collections of queue state',
    default: '5',
    parse: parse.seconds(0.1, 3600),
  }),
  option({
    name: 'collect-sweep',
    env: 'QUEUELENS_COLLECT_SWEEP',
    arg: '<seconds>',
    description:
      'with the event reader on, a queue whose events did not move is read again only this often (for what emits no event: a lock expiring, a key edited by hand); the ones that moved are read within about a second. 0 = read every queue at every collection',
    default: '60',
    parse: parse.seconds(0, 86_400),
  }),
  option({
    name: 'collect-sweep-idle',
    env: 'QUEUELENS_COLLECT_SWEEP_IDLE',
    arg: '<seconds>',
    description:
      'with the event reader on, a queue with no active job (nothing in it changes without an event, but a write that emits none: a raw Redis command, a drain or clean, Queue.rateLimit() while no job is active; on PostgreSQL SQL by hand, job.remove() of a finished job, Queue.retryJobs()) is swept only this often instead of every --collect-sweep; so such a write to an idle queue can take this long to show. At least --collect-sweep',
    default: '600',
    parse: parse.seconds(0, 86_400),
  }),
  option({
    name: 'collect-busy-max',
    env: 'QUEUELENS_COLLECT_BUSY_MAX',
    arg: '<seconds>',
    description:
      "with the event reader on, a queue whose events keep moving is read again, and its event counters committed, about as often as the sidecar's data is asked for (requests for /metrics, /api/queues or the status page at any replica): while those recur at a steady period longer than 4 s (Prometheus; an HA pair), once per expected request, about 2 s before it, and at most twice this apart; otherwise every half the recent gap between requests, at least once a second and at most this often apart. So with Prometheus scraping every 15 s each busy queue is read once per scrape, about 2 s before it, and with a poller every second about once a second. 1 = once a second whoever asks (the Redis time of busy queues then grows with their number, not with how often anyone looks)",
    default: '7.5',
    parse: parse.seconds(1, 60),
  }),
  option({
    name: 'shutdown-timeout',
    env: 'QUEUELENS_SHUTDOWN_TIMEOUT',
    arg: '<seconds>',
    description:
      "on SIGTERM/SIGINT, seconds to finish in-flight requests and close Redis before exiting 1 anyway; keep it under the orchestrator's grace period (Kubernetes: 30 s)",
    default: '5',
    parse: parse.seconds(1, 600),
  }),
  option({
    name: 'discovery-interval',
    env: 'QUEUELENS_DISCOVERY_INTERVAL',
    arg: '<seconds>',
    description: 'seconds between discovery passes (SCAN on Redis, a query on PostgreSQL) that find new and removed queues',
    default: '60',
    parse: parse.seconds(0.1, 86_400),
  }),
  option({
    name: 'max-queues',
    env: 'QUEUELENS_MAX_QUEUES',
    arg: '<n>',
    description: 'most queues exported; the rest are counted in bullmq_exporter_queues_dropped',
    default: '5000',
    parse: parse.number({ min: 1, max: 1_000_000, integer: true }),
  }),
  option({
    name: 'health-max-waiting',
    env: 'QUEUELENS_HEALTH_MAX_WAITING',
    arg: '<n>',
    description: '/health turns 503 degraded when a queue has more waiting jobs (off when unset)',
    parse: parse.number({ min: 0, integer: true }),
  }),
  option({
    name: 'health-max-oldest-age',
    env: 'QUEUELENS_HEALTH_MAX_OLDEST_AGE',
    arg: '<seconds>',
    description: "/health turns 503 degraded when a queue's oldest waiting job is older (off when unset)",
    parse: parse.seconds(0, 10 * 86_400),
  }),
  option({
    name: 'health-min-workers',
    env: 'QUEUELENS_HEALTH_MIN_WORKERS',
    arg: '<n>',
    description: '/health turns 503 degraded when a queue has fewer workers (off when unset)',
    parse: parse.number({ min: 0, integer: true }),
  }),
  option({
    name: 'events',
    env: 'QUEUELENS_EVENTS',
    arg: '<true|false>',
    description: 'read the events streams for job counters and latency histograms (one leader per Redis, or per shard)',
    default: 'true',
    parse: parse.boolean,
  }),
  option({
    name: 'job-name-label',
    env: 'QUEUELENS_JOB_NAME_LABEL',
    arg: '[true|false]',
    description: 'add a job_name label (learned from added events, capped by --max-job-names) to the event metrics',
    default: 'false',
    parse: parse.boolean,
  }),
  option({
    name: 'histograms',
    env: 'QUEUELENS_HISTOGRAMS',
    arg: '<per-queue|per-prefix|off>',
    description:
      'latency histograms (wait, processing, end-to-end) per queue; per-prefix for large fleets (one set per prefix, without the queue label: dashboards and the wait-time SLO alerts read the prefix); off for none. docs/metrics.md, cardinality',
    default: 'per-queue',
    parse: parse.oneOf(HISTOGRAM_MODES),
  }),
  option({
    name: 'max-job-names',
    env: 'QUEUELENS_MAX_JOB_NAMES',
    arg: '<n>',
    description: 'distinct job_name values per queue; later names, and names over 128 bytes, are folded into __other__',
    default: '20',
    parse: parse.number({ min: 1, max: 1000, integer: true }),
  }),
  ownPrefixOption,
  option({
    name: 'events-lease',
    env: 'QUEUELENS_EVENTS_LEASE',
    arg: '<seconds>',
    description: 'leader lease of the event reader; a dead leader is replaced within about 1.2 times this',
    default: '10',
    parse: parse.seconds(1, 300),
  }),
  option({
    name: 'events-shards',
    env: 'QUEUELENS_EVENTS_SHARDS',
    arg: '<n>',
    description: 'split the event reading into n shards, each with its own lease; replicas share them out (the same n on every replica)',
    default: '1',
    parse: parse.number({ min: 1, max: 256, integer: true }),
  }),
  option({
    name: 'events-retention',
    env: 'QUEUELENS_EVENTS_RETENTION',
    arg: '<seconds>',
    description: 'keep the event accounting of a queue that disappeared this long, then delete it',
    default: '604800',
    parse: parse.seconds(1, 365 * 86_400),
  }),
  option({
    name: 'events-max-in-flight',
    env: 'QUEUELENS_EVENTS_MAX_IN_FLIGHT',
    arg: '<n>',
    description: 'jobs the event reader tracks between events, over all queues; beyond it a queue evicts its oldest (bullmq_exporter_events_evicted_total)',
    default: '100000',
    parse: parse.number({ min: 1, max: 100_000_000, integer: true }),
  }),
  option({
    name: 'admin-token',
    env: 'QUEUELENS_ADMIN_TOKEN',
    arg: '<token>',
    description: 'bearer token for /admin (dead-letter routes, Bull Board at /admin/queues); unset = admin surface off',
    sensitive: true,
    parse: (raw: string) => {
      if (raw.length < 16) throw new Error('expected a token of at least 16 characters');
      return raw;
    },
  }),
  option({
    name: 'admin-writes',
    env: 'QUEUELENS_ADMIN_WRITES',
    arg: '<true|false>',
    description: 'let the admin surface change things (Bull Board actions, dead-letter redrive); off = read-only',
    default: 'false',
    parse: parse.boolean,
  }),
  option({
    name: 'trust-proxy',
    env: 'QUEUELENS_TRUST_PROXY',
    arg: '<addresses>',
    description:
      'believe X-Forwarded-For from these proxies (comma-separated addresses or CIDRs), so the admin throttle keys on the real client; unset = trust no proxy',
    parse: parseTrustProxy,
  }),
  logLevelOption,
] as const;

export type SidecarConfig = ConfigOf<typeof sidecarOptions>;

export function resolveSidecarConfig(raw: Record<string, unknown>): SidecarConfig {
  const config = checkedBackend(resolveOptions(sidecarOptions, raw));
  // queuelens's keys must never sit under a watched BullMQ prefix, where they could look like a queue's.
  if (config.prefixes.includes(config.ownPrefix)) {
    throw new ConfigError(`invalid --own-prefix (QUEUELENS_OWN_PREFIX) ${JSON.stringify(config.ownPrefix)}: must differ from every --prefixes entry`);
  }
  return config;
}
