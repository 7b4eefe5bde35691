// The validated configuration of `queuelens dlq`: which dead letters (ids, a time, or all) and how.
import { clusterPrefix, distinctPrefixes, logLevelOption, ownPrefixOption, prefixOption, redisClusterNodesOption, redisUrlOption } from './common.js';
import { backendOptions, checkedBackend } from './backend-options.js';
import { option, parse, resolveOptions, type ConfigOf } from './options.js';

export const dlqOptions = [
  redisUrlOption,
  redisClusterNodesOption,
  ...backendOptions,
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
  option({
    name: 'all',
    env: 'QUEUELENS_DLQ_ALL',
    description: 'act on every dead-lettered job (required when neither --id nor --since is given)',
    default: 'false',
    parse: parse.boolean,
  }),
  option({ name: 'dry-run', env: 'QUEUELENS_DLQ_DRY_RUN', description: 'say what would happen and change nothing', default: 'false', parse: parse.boolean }),
  option({
    name: 'limit',
    env: 'QUEUELENS_DLQ_LIMIT',
    arg: '<n>',
    description: 'most jobs `list` prints',
    default: '50',
    parse: parse.number({ min: 1, max: 1_000_000, integer: true }),
  }),
  logLevelOption,
] as const;
export type DlqConfig = ConfigOf<typeof dlqOptions>;
export const resolveDlqConfig = (raw: Record<string, unknown>): DlqConfig => checkedBackend(clusterPrefix(distinctPrefixes(resolveOptions(dlqOptions, raw))));

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
