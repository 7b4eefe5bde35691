// The validated configuration of `queuelens loadgen`: which scenario, how fast, how long, what mix.
import { clusterPrefix, logLevelOption, prefixOption, redisClusterNodesOption, redisUrlOption } from './common.js';
import { backendOptions, checkedBackend, migrateOption } from './backend-options.js';
import { option, parse, resolveOptions, type ConfigOf } from './options.js';

/** The load scenarios (loadgen/loadgen-scenarios.ts builds each). */
export const SCENARIOS = ['mixed', 'demo', 'no-workers', 'failing-webhook', 'stall', 'backlog'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const loadgenOptions = [
  redisUrlOption,
  redisClusterNodesOption,
  ...backendOptions,
  migrateOption,
  prefixOption,
  option({
    name: 'scenario',
    env: 'LOADGEN_SCENARIO',
    arg: '<name>',
    description: `what to send: ${SCENARIOS.join(', ')} (docs/monitoring.md lists what each makes fire)`,
    default: 'mixed',
    parse: parse.oneOf(SCENARIOS),
  }),
  option({
    name: 'rate',
    env: 'LOADGEN_RATE',
    arg: '<jobs/s>',
    description: 'jobs enqueued per second, spread over the queues',
    default: '20',
    parse: parse.number({ min: 0.1, max: 100_000 }),
  }),
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
  option({
    name: 'export-rows',
    env: 'LOADGEN_EXPORT_ROWS',
    arg: '<n>',
    description: 'rows per generated export',
    default: '1000',
    parse: parse.number({ min: 0, max: 100_000_000, integer: true }),
  }),
  logLevelOption,
] as const;
export type LoadgenConfig = ConfigOf<typeof loadgenOptions>;
export const resolveLoadgenConfig = (raw: Record<string, unknown>): LoadgenConfig => checkedBackend(clusterPrefix(resolveOptions(loadgenOptions, raw)));

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
