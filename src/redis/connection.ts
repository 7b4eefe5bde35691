// Creates ioredis connections with the behaviour the sidecar needs: fail fast while Redis is down (a scrape
// must never hang), reconnect forever with a short back-off, never log the password. Standalone or Cluster.
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../log/logger.js';
import { redactString, safeUrl } from '../log/redact.js';
import { RepeatLimiter } from '../log/repeat-limiter.js';
import { defineWritingScripts } from './scripts.js';

/** Either kind of client; code that must reach every node uses masters(). */
export type RedisClient = Redis | Cluster;

export interface ConnectionOptions {
  url: string;
  /** Redis Cluster seed nodes (`host:port`); credentials and TLS still come from `url`. */
  clusterNodes?: readonly string[];
  /** Connection name shown in CLIENT LIST. */
  name?: string;
  log?: Logger;
  /** BullMQ workers and blocking readers need null (retry forever); the collector wants fast failure. */
  maxRetriesPerRequest?: number | null;
  lazyConnect?: boolean;
  /** Reject a command that has no reply after this long (a hung Redis must not hang a collection). */
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** false: one connection attempt and no reconnects, for one-shot probes. */
  reconnect?: boolean;
}

/** Back-off that keeps recovery within ~1 s of Redis coming back. */
export function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(attempt, 4), 1000);
}

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

/** The nodes that own data: the client itself, or every Cluster master. */
export function masters(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client];
}

/** ioredis options from a redis:// or rediss:// URL (auth, TLS, db) for use on Cluster nodes. */
function optionsFromUrl(url: string): RedisOptions {
  const u = new URL(url);
  return {
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    tls: u.protocol === 'rediss:' ? {} : undefined,
  };
}

export function parseClusterNode(node: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(node.trim());
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65_535) throw new Error(`expected host:port, got ${JSON.stringify(node)}`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** Where a client connects and the last connection-level error it saw (cleared when it is ready again). */
const links = new WeakMap<RedisClient, { where: string; lastError?: string }>();

/**
 * What a command error should say about the connection: the address (credentials masked) and, while the
 * connection is down, the error the connection itself got (`connect ECONNREFUSED 10.0.0.5:6379`), which says more
 * than what the command got from ioredis (`Stream isn't writeable…`, `Connection is closed.`).
 */
export function connectionState(client: RedisClient): { where: string; lastError?: string } | undefined {
  return links.get(client);
}

export function createRedis(opts: ConnectionOptions): RedisClient {
  const retry = opts.reconnect === false ? () => null : reconnectDelay;
  const common: RedisOptions = {
    connectionName: opts.name,
    maxRetriesPerRequest: opts.maxRetriesPerRequest === undefined ? 1 : opts.maxRetriesPerRequest,
    enableOfflineQueue: opts.maxRetriesPerRequest === null,
    retryStrategy: retry,
    connectTimeout: opts.connectTimeoutMs ?? 5000,
    commandTimeout: opts.commandTimeoutMs,
  };
  const client: RedisClient = opts.clusterNodes?.length
    ? new Cluster(opts.clusterNodes.map(parseClusterNode), {
        redisOptions: { ...common, ...optionsFromUrl(opts.url) },
        lazyConnect: opts.lazyConnect ?? false,
        enableOfflineQueue: common.enableOfflineQueue,
        clusterRetryStrategy: retry,
        // ioredis's cluster auto-pipelines reject our grouped script calls ("same slots allocation group");
        // commands are still written without waiting for replies, so a collection stays one round trip per node.
        enableAutoPipelining: false,
      })
    : new Redis(opts.url, { ...common, lazyConnect: opts.lazyConnect ?? false, enableAutoPipelining: true });
  defineWritingScripts(client);
  const where = opts.clusterNodes?.length ? `cluster ${opts.clusterNodes.join(',')}` : safeUrl(opts.url);
  // ioredis repeats an error on every reconnect attempt, and some outages alternate two: each distinct one is logged
  // once a minute, with how often it repeated, until the connection is restored.
  const errors = new RepeatLimiter();
  let failing = false;
  const link: { where: string; lastError?: string } = { where };
  links.set(client, link);
  client.on('error', (err: Error) => {
    failing = true;
    link.lastError = redactString(err.message);
    const r = errors.check(err.message);
    if (r.log) opts.log?.warn({ redis: where, err: err.message, ...(r.repeated ? { repeated: r.repeated } : {}) }, 'redis connection error');
  });
  client.on('ready', () => {
    if (failing) opts.log?.info({ redis: where }, 'redis connection restored');
    failing = false;
    link.lastError = undefined;
    errors.reset();
  });
  return client;
}

/** A one-shot command could not reach Redis: the CLI prints the sentence and exits 1, no stack trace. */
export class RedisUnreachableError extends Error {
  readonly code = 'E_REDIS_UNREACHABLE';
  readonly exitCode = 1;
}

/**
 * One connect + PING with no retries, for one-shot commands (enqueue, dlq) that would otherwise wait forever
 * on a connection built to reconnect forever. On a Cluster, connecting includes reading the slot map.
 */
export async function assertRedisReachable(target: Pick<ConnectionOptions, 'url' | 'clusterNodes'>, timeoutMs = 3000): Promise<void> {
  const probe = createRedis({
    ...target,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    reconnect: false,
    connectTimeoutMs: timeoutMs,
    commandTimeoutMs: timeoutMs,
  });
  let reason = '';
  probe.on('error', (err: Error) => (reason ||= err.message));
  try {
    await probe.connect();
    await probe.ping();
  } catch (err) {
    const why = redactString(reason || (err as Error).message);
    throw new RedisUnreachableError(
      target.clusterNodes?.length
        ? `Redis Cluster is unreachable at ${target.clusterNodes.join(',')} (${why}): start it, or point --redis-cluster-nodes (REDIS_CLUSTER_NODES) at its nodes.`
        : `Redis is unreachable at ${safeUrl(target.url)} (${why}): start it, or point --redis-url (REDIS_URL) at a running Redis.`,
    );
  } finally {
    probe.disconnect();
  }
}
