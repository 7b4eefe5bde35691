// buildApp(): the sidecar's HTTP surface. It never listens by itself; tests drive it with inject().
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { MAX_NAME_BYTES } from '../domain/queue-snapshot.js';
import type { Logger } from '../log/logger.js';
import type { QueuesResponse } from '../status/queue-view.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdminOptions } from './admin-routes.js';
import type { HealthReport } from './health.js';
import { isMetricsRequest, metricsHandler, type RenderMetrics } from './metrics-route.js';
import { queuesApi } from './queues-api.js';
import { statusPage } from './status-page.js';

export interface AppDeps {
  log: Logger;
  /** Renders the exposition body in the negotiated format; gzip when the scraper asked for it. */
  renderMetrics: RenderMetrics;
  /** Health including the optional per-queue thresholds (/health). */
  health: () => HealthReport;
  /** Readiness: Redis and collection freshness only (/readyz). */
  readiness: () => HealthReport;
  /** The queue board (/api/queues, the status page at /). */
  queues: (opts: { history: boolean }) => QueuesResponse;
  /** The same as JSON text, built in slices (QueueBoard.responseJson); absent: queues() serialised per request. */
  queuesJson?: (opts: { history: boolean }) => Promise<string>;
  /** --trust-proxy: the proxies whose X-Forwarded-For gives the client address (req.ip); absent = none. */
  trustProxy?: string[];
  /** The admin surface (DLQ routes, Bull Board); absent = off, /admin/* is 404. */
  admin?: AdminOptions;
}

export { acceptsGzip, negotiateFormat } from './metrics-route.js';

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

  // /metrics on node:http ahead of fastify's router (metrics-route.ts): the scrapes' path at 50 concurrent scrapers.
  // The route below answers the same through inject(), and every request once the app closes (fastify's 503).
  const serveMetrics = metricsHandler(deps.renderMetrics, deps.log.child({ component: 'http' }));
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  const server = app.server;
  const fastifyHandlers = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  const [fastifyHandler] = fastifyHandlers;
  if (fastifyHandlers.length !== 1 || fastifyHandler === undefined) throw new Error(`expected fastify's one request listener, found ${fastifyHandlers.length}`);
  server.removeListener('request', fastifyHandler);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!closing && isMetricsRequest(req)) void serveMetrics(req, res);
    else fastifyHandler(req, res);
  });
  app.get('/metrics', async (req, reply) => {
    reply.hijack();
    await serveMetrics(req.raw, reply.raw);
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

  await app.register(queuesApi, { queues: deps.queues, queuesJson: deps.queuesJson });
  await app.register(statusPage);
  // Encapsulated: its bearer-token hook guards its own routes only. Loaded only when configured: Bull Board,
  // BullMQ and zod add ~25 MB to a process that does not serve them.
  if (deps.admin) {
    const { adminRoutes } = await import('./admin-routes.js');
    await app.register(adminRoutes, deps.admin);
  }

  return app;
}

/** How long requests in flight at shutdown get to finish before their connections are cut. */
const DRAIN_MS = 2000;

/**
 * Stops serving: in-flight requests get DRAIN_MS to finish (new ones are answered 503), then every connection still
 * open is cut. A connection holding half a request (headers never ended: a stuck scraper, a port scanner) is not
 * idle, so without the cut the close would wait for Node's headers timeout, past any shutdown deadline.
 */
export async function closeApp(app: FastifyInstance): Promise<void> {
  const cut = setTimeout(() => app.server.closeAllConnections(), DRAIN_MS);
  cut.unref();
  try {
    await app.close();
  } finally {
    clearTimeout(cut);
  }
}
