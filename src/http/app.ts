// buildApp(): the sidecar's HTTP surface. It never listens by itself; tests drive it with inject().
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { MAX_NAME_BYTES } from '../domain/queue-snapshot.js';
import type { Logger } from '../log/logger.js';
import type { QueuesResponse } from '../status/queue-view.js';
import type { RenderedMetrics } from '../metrics/exposition.js';
import type { AdminOptions } from './admin-routes.js';
import type { HealthReport } from './health.js';
import { queuesApi } from './queues-api.js';
import { statusPage } from './status-page.js';

export interface AppDeps {
  log: Logger;
  /** Renders the exposition body; openMetrics and gzip when the scraper asked for them. */
  renderMetrics: (openMetrics: boolean, acceptGzip: boolean) => Promise<RenderedMetrics>;
  /** Health including the optional per-queue thresholds (/health). */
  health: () => HealthReport;
  /** Readiness: Redis and collection freshness only (/readyz). */
  readiness: () => HealthReport;
  /** The queue board (/api/queues, the status page at /). */
  queues: (opts: { history: boolean }) => QueuesResponse;
  /** --trust-proxy: the proxies whose X-Forwarded-For gives the client address (req.ip); absent = none. */
  trustProxy?: string[];
  /** The admin surface (DLQ routes, Bull Board); absent = off, /admin/* is 404. */
  admin?: AdminOptions;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Answer 503 to requests that arrive while closing; in-flight ones finish.
    return503OnClosing: true,
    // Off unless configured: otherwise any client could name its own address in X-Forwarded-For.
    trustProxy: deps.trustProxy ?? false,
    bodyLimit: 64 * 1024,
    // A queue name is a path parameter (/api/queues/<name>); exported names reach MAX_NAME_BYTES of UTF-8, up to three
    // times that once percent-encoded. Fastify's default of 100 characters answered 400 for longer ones.
    routerOptions: { maxParamLength: 4 * MAX_NAME_BYTES },
  });

  app.get('/metrics', async (req, reply) => {
    const accept = req.headers.accept ?? '';
    // Prometheus asks for gzip; the body is compressed once per render, not per scrape.
    const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
    const m = await deps.renderMetrics(accept.includes('application/openmetrics-text'), gzip);
    reply.header('content-type', m.contentType).header('cache-control', 'no-store').header('vary', 'accept-encoding');
    if (m.contentEncoding) reply.header('content-encoding', m.contentEncoding);
    return reply.send(m.body);
  });

  app.get('/livez', async () => ({ status: 'ok' }));

  const healthRoute = (report: () => HealthReport) => async (_req: unknown, reply: FastifyReply) => {
    const r = report();
    return reply
      .code(r.status === 'ok' ? 200 : 503)
      .header('cache-control', 'no-store')
      .send(r);
  };
  app.get('/health', healthRoute(deps.health));
  app.get('/readyz', healthRoute(deps.readiness));

  await app.register(queuesApi, { queues: deps.queues });
  await app.register(statusPage);
  // Encapsulated: its bearer-token hook guards its own routes only. Loaded only when configured: Bull Board,
  // BullMQ and zod add ~25 MB to a process that does not serve them.
  if (deps.admin) {
    const { adminRoutes } = await import('./admin-routes.js');
    await app.register(adminRoutes, deps.admin);
  }

  return app;
}
