// `queuelens top`'s validated configuration.
import { checkedBackend } from './backend-options.js';
import { logLevelOption, ownPrefixOption, postgresOptions, prefixesOption, redisClusterNodesOption, redisUrlOption } from './common.js';
import { option, parse, resolveOptions, type ConfigOf } from './options.js';

export const TOP_SORTS = ['badness', 'name', 'backlog', 'age', 'in', 'out', 'fail', 'dlq', 'workers'] as const;
export type TopSort = (typeof TOP_SORTS)[number];

export const topOptions = [
  option({
    name: 'url',
    env: 'QUEUELENS_URL',
    arg: '<url>',
    description: 'sidecar to read /api/queues from, e.g. http://127.0.0.1:9487; unset = read the store directly (Redis, or PostgreSQL with --backend postgres)',
    sensitive: true,
    parse: parse.url(['http:', 'https:']),
  }),
  ...postgresOptions,
  redisUrlOption,
  redisClusterNodesOption,
  prefixesOption,
  ownPrefixOption,
  option({
    name: 'interval',
    env: 'QUEUELENS_TOP_INTERVAL',
    arg: '<seconds>',
    description: 'seconds between refreshes',
    default: '2',
    parse: parse.seconds(0.2, 3600),
  }),
  option({
    name: 'sort',
    env: 'QUEUELENS_TOP_SORT',
    arg: '<column>',
    description: `initial sort: ${TOP_SORTS.join(', ')}`,
    default: 'badness',
    parse: parse.oneOf(TOP_SORTS),
  }),
  option({ name: 'once', env: 'QUEUELENS_TOP_ONCE', description: 'print one table and exit (for scripts)', parse: parse.boolean }),
  option({
    name: 'color',
    env: 'QUEUELENS_COLOR',
    arg: '<when>',
    description: 'colours: auto (a terminal without NO_COLOR), always, never',
    default: 'auto',
    parse: parse.oneOf(['auto', 'always', 'never'] as const),
  }),
  { ...logLevelOption, default: 'warn' },
] as const;

export type TopConfig = ConfigOf<typeof topOptions> & { useColor: boolean };

export function resolveTopConfig(raw: Record<string, unknown>, isTty: boolean, env: NodeJS.ProcessEnv = process.env): TopConfig {
  const cfg = resolveOptions(topOptions, raw);
  // With --url the store options are unused: nothing to check.
  if (cfg.url === undefined) checkedBackend(cfg);
  const useColor = cfg.color === 'always' || (cfg.color === 'auto' && isTty && env.NO_COLOR === undefined);
  return { ...cfg, useColor };
}
