// Options shared by every subcommand that talks to Redis or logs.
import { parseClusterNode } from '../redis/connection.js';
import { option, parse } from './options.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const redisUrlOption = option({
  name: 'redis-url',
  env: 'REDIS_URL',
  arg: '<url>',
  description: 'Redis to read, redis:// or rediss:// (TLS); may carry a user and password',
  default: 'redis://127.0.0.1:6379',
  parse: parse.url(['redis:', 'rediss:']),
});

export const redisClusterNodesOption = option({
  name: 'redis-cluster-nodes',
  env: 'REDIS_CLUSTER_NODES',
  arg: '<list>',
  description: 'Redis Cluster seed nodes host:port,...; credentials and TLS come from --redis-url (unset = standalone)',
  parse: (raw: string) => parse.list(raw).map((n) => (parseClusterNode(n), n.trim())),
});

export const logLevelOption = option({
  name: 'log-level',
  env: 'LOG_LEVEL',
  arg: '<level>',
  description: `log level: ${LOG_LEVELS.join(', ')}`,
  default: 'info',
  parse: parse.oneOf(LOG_LEVELS),
});

export const prefixesOption = option({
  name: 'prefixes',
  env: 'QUEUELENS_PREFIXES',
  arg: '<list>',
  description: 'comma-separated BullMQ key prefixes to watch',
  default: 'bull',
  parse: (raw: string) => {
    const list = parse.list(raw);
    for (const p of list) if (/[\s*?[\]]/.test(p)) throw new Error(`prefix ${JSON.stringify(p)} may not contain spaces or glob characters (* ? [ ])`);
    return list;
  },
});

export const ownPrefixOption = option({
  name: 'own-prefix',
  env: 'QUEUELENS_OWN_PREFIX',
  arg: '<prefix>',
  description: 'key prefix of what queuelens stores in Redis (event accounting, cursors, leader lease); never a BullMQ prefix',
  default: 'queuelens',
  parse: (raw: string) => {
    const p = parse.string(raw);
    if (/[\s*?[\]{}]/.test(p)) throw new Error('expected a prefix without spaces, glob characters or braces');
    return p;
  },
});
