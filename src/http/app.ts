// buildApp(): the sidecar's HTTP surface. It never listens by itself; tests drive it with inject().
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { MAX_NAME_BYTES } from '../domain/queue-snapshot.js';
import type { Logger } from '../log/logger.js';
import type { QueuesResponse } from '../status/queue-view.js';
import type { ExpositionFormat, RenderedMetrics } from '../metrics/exposition.js';
import type { AdminOptions } from './admin-routes.js';
import type { HealthReport } from './health.js';
import { queuesApi } from './queues-api.js';
import { statusPage } from './status-page.js';

export interface AppDeps {
  log: Logger;
  /** Renders the exposition body in the negotiated format; gzip when the scraper asked for it. */
  renderMetrics: (format: ExpositionFormat, acceptGzip: boolean) => Promise<RenderedMetrics>;
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
    const gzip = acceptsGzip(req.headers['accept-encoding']);
    const m = await deps.renderMetrics(negotiateFormat(accept), gzip);
    reply.header('content-type', m.contentType).header('cache-control', 'no-store').header('vary', 'accept, accept-encoding');
    if (m.contentEncoding) reply.header('content-encoding', m.contentEncoding);
    // A gzipped body (what Prometheus asks for: 0.75 MB at 10,000 queues) is sent as one buffer, joined once per body
    // and shared by every scrape of it, in one write like any static file; a plain one as its chunks as they are kept
    // (tens of MB at 10,000 queues are not copied per body), with its length.
    if (m.contentEncoding === 'gzip') return reply.header('content-length', m.length).send(m.body);
    return reply.header('content-length', m.length).send(m.stream());
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

/**
 * The exposition format of a scrape's Accept header: the supported type with the highest q (the first listed on
 * a tie), the Prometheus text format when none is named. Protobuf only as Prometheus asks for it, the delimited
 * MetricFamily stream (what it sends with native histograms enabled); OpenMetrics as before.
 */
export function negotiateFormat(accept: string): ExpositionFormat {
  let best: { format: ExpositionFormat; q: number } = { format: 'text', q: -1 };
  for (const part of accept.split(',')) {
    const [type = '', ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    const param = (name: string) => params.find((p) => p.startsWith(`${name}=`))?.slice(name.length + 1);
    const q = Number(param('q') ?? 1);
    let format: ExpositionFormat | undefined;
    if (type === 'application/vnd.google.protobuf') {
      if (param('proto') === 'io.prometheus.client.metricfamily' && param('encoding') === 'delimited') format = 'protobuf';
    } else if (type === 'application/openmetrics-text') format = 'openmetrics';
    else if (type === 'text/plain' || type === '*/*' || type === 'text/*') format = 'text';
    if (format !== undefined && Number.isFinite(q) && q > 0 && q > best.q) best = { format, q };
  }
  return best.format;
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

/**
 * Whether an Accept-Encoding header allows gzip (RFC 9110, 12.5.3): `gzip` (or `x-gzip`), any case, unless its
 * weight is 0 (`gzip;q=0`: the client refuses it, and got a gzipped body it could not read).
 */
export function acceptsGzip(header: string | undefined): boolean {
  for (const part of (header ?? '').split(',')) {
    const [name = '', ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    if (name !== 'gzip' && name !== 'x-gzip') continue;
    const q = params.find((x) => x.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}
