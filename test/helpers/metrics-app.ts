// The HTTP app serving one Exposition's /metrics on a free loopback port (health, readiness and /api/queues stubbed),
// for tests that scrape over real HTTP.
import type { AddressInfo } from 'node:net';
import { buildApp } from '../../src/http/app.js';
import type { HealthReport } from '../../src/http/health.js';
import { createLogger } from '../../src/log/logger.js';
import type { Exposition } from '../../src/metrics/exposition.js';
import type { QueuesResponse } from '../../src/status/queue-view.js';

export async function serveMetrics(e: Exposition): Promise<{ port: number; close: () => Promise<void> }> {
  const ok = (): HealthReport => ({ status: 'ok' }) as unknown as HealthReport;
  const app = await buildApp({
    log: createLogger({ level: 'silent' }),
    renderMetrics: (format, acceptGzip) => e.render(format, acceptGzip),
    health: ok,
    readiness: ok,
    queues: () => ({}) as unknown as QueuesResponse,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { port, close: () => app.close() };
}
