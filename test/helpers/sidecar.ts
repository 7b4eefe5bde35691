// An in-process sidecar against a test Redis (or a test PostgreSQL), driven with inject().
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log/logger.js';
import { resolveSidecarConfig, type SidecarConfig } from '../../src/config/sidecar-config.js';
import { createBackend } from '../../src/backends/create-backend.js';
import { RedisBackend } from '../../src/backends/redis-backend.js';
import { PostgresBackend } from '../../src/postgres/postgres-backend.js';
import type { QueueDiscovery } from '../../src/collector/discovery.js';
import type { RedisClient } from '../../src/redis/connection.js';
import { createSidecar, type Sidecar } from '../../src/sidecar/create-sidecar.js';
import { parsePromText, type Series } from './prom-text.js';

/** Long intervals (tests drive collections with refresh()), no logs. */
const BASE = { port: '9487', host: '127.0.0.1', collectInterval: '60', discoveryInterval: '60', maxQueues: '5000', logLevel: 'silent' };

/** `logTo`: collects the sidecar's log lines (raw JSON chunks) for tests that assert on what it logs. */
export async function testSidecar(
  redisUrl: string,
  raw: Record<string, unknown> = {},
  logTo?: string[],
): Promise<Sidecar & { config: SidecarConfig; redis: RedisClient; discovery: QueueDiscovery; scrape(): Promise<Series> }> {
  const config = resolveSidecarConfig({ ...BASE, redisUrl, prefixes: 'bull', ...raw });
  const log = testLogger(config, logTo);
  // The sidecar composes any backend; these tests also reach into the Redis one (its connection, its discovery).
  const backend = await createBackend(config, log);
  if (!(backend instanceof RedisBackend)) throw new Error(`testSidecar drives a Redis sidecar, not ${backend.kind}`);
  const sidecar = await createSidecar(config, log, backend);
  return Object.assign(sidecar, {
    config,
    redis: backend.redis,
    discovery: backend.discovery,
    scrape: () => scrape(sidecar),
  });
}

/** An in-process sidecar with --backend postgres against a test PostgreSQL (BullMQ's schema `bullmq` unless `raw` says). */
export async function testPostgresSidecar(
  databaseUrl: string,
  raw: Record<string, unknown> = {},
  logTo?: string[],
): Promise<Sidecar & { config: SidecarConfig; backend: PostgresBackend; scrape(): Promise<Series> }> {
  const config = resolveSidecarConfig({ ...BASE, backend: 'postgres', databaseUrl, ...raw });
  const log = testLogger(config, logTo);
  const backend = await createBackend(config, log);
  if (!(backend instanceof PostgresBackend)) throw new Error(`testPostgresSidecar drives a PostgreSQL sidecar, not ${backend.kind}`);
  const sidecar = await createSidecar(config, log, backend);
  return Object.assign(sidecar, { config, backend, scrape: () => scrape(sidecar) });
}

function testLogger(config: SidecarConfig, logTo: string[] | undefined) {
  const destination = logTo
    ? new Writable({
        write(chunk, _enc, cb) {
          logTo.push(chunk.toString());
          cb();
        },
      })
    : undefined;
  return createLogger({ level: config.logLevel, destination });
}

async function scrape(sidecar: Sidecar): Promise<Series> {
  const res = await sidecar.app.inject({ method: 'GET', url: '/metrics' });
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`);
  return parsePromText(res.body);
}
