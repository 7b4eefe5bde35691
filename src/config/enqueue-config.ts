// The validated configuration of `queuelens enqueue`: one job, its data and options.
import { clusterPrefix, logLevelOption, prefixOption, redisClusterNodesOption, redisUrlOption } from './common.js';
import { backendOptions, checkedBackend, migrateOption } from './backend-options.js';
import { option, parse, resolveOptions, type ConfigOf } from './options.js';

export const enqueueOptions = [
  redisUrlOption,
  redisClusterNodesOption,
  ...backendOptions,
  migrateOption,
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
  option({
    name: 'attempts',
    env: 'QUEUELENS_JOB_ATTEMPTS',
    arg: '<n>',
    description: 'attempts before dead-lettering (default per queue)',
    parse: parse.number({ min: 1, max: 1000, integer: true }),
  }),
  logLevelOption,
] as const;
export type EnqueueConfig = ConfigOf<typeof enqueueOptions>;
export const resolveEnqueueConfig = (raw: Record<string, unknown>): EnqueueConfig => checkedBackend(clusterPrefix(resolveOptions(enqueueOptions, raw)));

function json(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    throw new Error('expected valid JSON, e.g. \'{"to":"a@example.com"}\'');
  }
}
