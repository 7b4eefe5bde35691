// The sidecar's validated configuration.
import { logLevelOption, prefixesOption, redisClusterNodesOption, redisUrlOption } from './common.js';
import { option, parse, resolveOptions, type ConfigOf } from './options.js';

export const sidecarOptions = [
  redisUrlOption,
  redisClusterNodesOption,
  option({ name: 'port', env: 'QUEUELENS_PORT', arg: '<port>', description: 'HTTP port for /metrics and /health', default: '9487', parse: parse.port }),
  option({ name: 'host', env: 'QUEUELENS_HOST', arg: '<host>', description: 'address to listen on', default: '0.0.0.0', parse: parse.string }),
  prefixesOption,
  option({
    name: 'queues',
    env: 'QUEUELENS_QUEUES',
    arg: '<list>',
    description: 'fixed comma-separated queue names (skips discovery); unset = discover with SCAN',
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
    name: 'discovery-interval',
    env: 'QUEUELENS_DISCOVERY_INTERVAL',
    arg: '<seconds>',
    description: 'seconds between SCAN passes that find new and removed queues',
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
    description: '/health turns 503 degraded when a queue\'s oldest waiting job is older (off when unset)',
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
    name: 'admin-token',
    env: 'QUEUELENS_ADMIN_TOKEN',
    arg: '<token>',
    description: 'bearer token for /admin (dead-letter routes, Bull Board at /admin/queues); unset = admin surface off',
    parse: (raw: string) => {
      if (raw.length < 16) throw new Error('expected a token of at least 16 characters');
      return raw;
    },
  }),
  logLevelOption,
] as const;

export type SidecarConfig = ConfigOf<typeof sidecarOptions>;

export function resolveSidecarConfig(raw: Record<string, unknown>): SidecarConfig {
  return resolveOptions(sidecarOptions, raw);
}
