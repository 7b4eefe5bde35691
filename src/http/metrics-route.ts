// GET and HEAD /metrics on node:http's own request and response objects. buildApp() calls it from the HTTP server's
// 'request' listener ahead of fastify (no router, Request/Reply objects, child logger or hooks per scrape: at 10,000
// queues 50 concurrent scrapers spent ~15 % of a burst there) and from its fastify route (inject(), and every request
// while the app closes, so those get fastify's 503): one handler, the same bytes and headers either way.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log/logger.js';
import type { ExpositionFormat, RenderedMetrics } from '../metrics/exposition.js';

export type RenderMetrics = (format: ExpositionFormat, acceptGzip: boolean) => Promise<RenderedMetrics>;

/** Whether a request is one the handler answers: GET or HEAD of /metrics, with or without a query string. */
export function isMetricsRequest(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const url = req.url ?? '';
  return url === '/metrics' || url.startsWith('/metrics?');
}

/**
 * Answers a scrape: the body in the negotiated format, gzipped when the scraper asked for it (compressed once per
 * body, not per scrape). A HEAD gets the same headers and no body (node:http drops it). A render that fails gets
 * fastify's default 500 (its JSON error body), logged at error level as fastify logs it.
 */
export function metricsHandler(render: RenderMetrics, log: Logger): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    let m: RenderedMetrics;
    try {
      m = await render(negotiateFormat(req.headers.accept ?? ''), acceptsGzip(req.headers['accept-encoding']));
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      log.error({ err: err.message, url: req.url }, err.message);
      if (res.headersSent || res.destroyed) return;
      const body = JSON.stringify({ statusCode: 500, error: 'Internal Server Error', message: err.message });
      res.writeHead(500, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    if (res.destroyed) return;
    res.writeHead(200, {
      'content-type': m.contentType,
      'cache-control': 'no-store',
      vary: 'accept, accept-encoding',
      ...(m.contentEncoding ? { 'content-encoding': m.contentEncoding } : {}),
      'content-length': m.length,
    });
    // A gzipped body (what Prometheus asks for: 0.75 MB at 10,000 queues) is one buffer, joined once per body and
    // shared by every scrape of it, sent in one write like any static file; a plain one as its chunks as they are
    // kept (tens of MB at 10,000 queues are not copied per body).
    if (m.contentEncoding === 'gzip') {
      res.end(m.body);
      return;
    }
    const stream = m.stream();
    res.once('close', () => stream.destroy());
    stream.pipe(res);
  };
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
