// An in-process sidecar against a test Redis, driven with inject().
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log/logger.js';
import { resolveSidecarConfig, type SidecarConfig } from '../../src/config/sidecar-config.js';
import { createSidecar, type Sidecar } from '../../src/sidecar/create-sidecar.js';
import { parsePromText, type Series } from './prom-text.js';

/** `logTo`: collects the sidecar's log lines (raw JSON chunks) for tests that assert on what it logs. */
export async function testSidecar(
  redisUrl: string,
  raw: Record<string, unknown> = {},
  logTo?: string[],
): Promise<Sidecar & { config: SidecarConfig; scrape(): Promise<Series> }> {
  const config = resolveSidecarConfig({
    redisUrl,
    port: '9487',
    host: '127.0.0.1',
    prefixes: 'bull',
    collectInterval: '60',
    discoveryInterval: '60',
    maxQueues: '5000',
    logLevel: 'silent',
    ...raw,
  });
  const destination = logTo
    ? new Writable({
        write(chunk, _enc, cb) {
          logTo.push(chunk.toString());
          cb();
        },
      })
    : undefined;
  const sidecar = await createSidecar(config, createLogger({ level: config.logLevel, destination }));
  return Object.assign(sidecar, {
    config,
    async scrape() {
      const res = await sidecar.app.inject({ method: 'GET', url: '/metrics' });
      if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`);
      return parsePromText(res.body);
    },
  });
}
