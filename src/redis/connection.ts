// Creates ioredis connections with the behaviour the sidecar needs: fail fast while Redis is down
// (a scrape must never hang), reconnect forever with a short back-off, never log the password.
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../log/logger.js';
import { safeUrl } from '../log/redact.js';

export interface ConnectionOptions {
  url: string;
  /** Connection name shown in CLIENT LIST. */
  name?: string;
  log?: Logger;
  /** BullMQ workers and blocking readers need null (retry forever); the collector wants fast failure. */
  maxRetriesPerRequest?: number | null;
  lazyConnect?: boolean;
  /** Reject a command that has no reply after this long (a hung Redis must not hang a collection). */
  commandTimeoutMs?: number;
}

/** Back-off that keeps recovery within ~1 s of Redis coming back. */
export function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(attempt, 4), 1000);
}

export function createRedis(opts: ConnectionOptions): Redis {
  const extra: RedisOptions = {
    connectionName: opts.name,
    maxRetriesPerRequest: opts.maxRetriesPerRequest === undefined ? 1 : opts.maxRetriesPerRequest,
    enableOfflineQueue: opts.maxRetriesPerRequest === null,
    retryStrategy: reconnectDelay,
    lazyConnect: opts.lazyConnect ?? false,
    connectTimeout: 5000,
    commandTimeout: opts.commandTimeoutMs,
  };
  const client = new Redis(opts.url, extra);
  let lastError = '';
  client.on('error', (err: Error) => {
    // ioredis repeats the same error on every reconnect attempt; log each distinct one once.
    const msg = err.message;
    if (msg === lastError) return;
    lastError = msg;
    opts.log?.warn({ redis: safeUrl(opts.url), err: msg }, 'redis connection error');
  });
  client.on('ready', () => {
    if (lastError) opts.log?.info({ redis: safeUrl(opts.url) }, 'redis connection restored');
    lastError = '';
  });
  return client;
}
