// /metrics answered on node:http ahead of fastify (src/http/metrics-route.ts, buildApp's request listener): scrapes
// over real HTTP never enter fastify's router or hooks, yet get what the fastify route gives through inject(): the same
// status, headers and bytes in every format, with and without gzip, for GET and HEAD, with a query string; a render
// that fails is fastify's 500; a scrape whose request ends once the app closes gets fastify's 503.
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../src/http/app.js';
import type { HealthReport } from '../src/http/health.js';
import type { RenderMetrics } from '../src/http/metrics-route.js';
import { createLogger } from '../src/log/logger.js';
import { Exposition } from '../src/metrics/exposition.js';
import type { QueuesResponse } from '../src/status/queue-view.js';

const ACCEPT = {
  text: 'text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
  openmetrics: 'application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3',
  protobuf: 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;q=0.3',
};

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

/** An Exposition with one gauge of 300 series, served on a free loopback port; `render` may wrap its render(). */
async function serve(wrap?: (render: RenderMetrics) => RenderMetrics): Promise<{ port: number; requests: string[]; e: Exposition }> {
  // Long liveMaxAgeMs: the process metrics are not rendered again between the two scrapes compared.
  const e = new Exposition(60_000);
  const g = e.gauge({ name: 'route_test_jobs', help: 'Jobs.', labels: ['queue'] } as never);
  for (let i = 0; i < 300; i += 1) g.set({ queue: `q${i}` }, i);
  e.invalidate();
  const ok = (): HealthReport => ({ status: 'ok' }) as unknown as HealthReport;
  const render: RenderMetrics = (f, gz) => e.render(f, gz);
  app = await buildApp({
    log: createLogger({ level: 'silent' }),
    renderMetrics: wrap ? wrap(render) : render,
    health: ok,
    readiness: ok,
    queues: () => ({}) as unknown as QueuesResponse,
  });
  // What reaches fastify (a root hook sees every request it routes).
  const requests: string[] = [];
  app.addHook('onRequest', async (req) => {
    requests.push(`${req.method} ${req.url}`);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as AddressInfo).port, requests, e };
}

interface Got {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function get(port: number, o: { path?: string; method?: string; headers?: Record<string, string> } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', path: o.path ?? '/metrics', method: o.method ?? 'GET', headers: o.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The headers an answer carries, without those node:http adds per connection (inject() has no connection). */
function own(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const { date: _d, connection: _c, 'keep-alive': _k, ...rest } = headers;
  return rest;
}

describe('/metrics ahead of fastify', () => {
  it('is answered without entering fastify, other routes still are', async () => {
    const { port, requests } = await serve();
    expect((await get(port, { headers: { 'accept-encoding': 'gzip' } })).status).toBe(200);
    expect((await get(port, { path: '/metrics?x=1' })).status).toBe(200);
    expect((await get(port, { method: 'HEAD' })).status).toBe(200);
    expect(requests).toEqual([]);
    expect((await get(port, { path: '/livez' })).status).toBe(200);
    expect((await get(port, { path: '/metrics/' })).status).toBe(404);
    expect((await get(port, { path: '/metrics', method: 'POST' })).status).toBe(404);
    expect(requests).toEqual(['GET /livez', 'GET /metrics/', 'POST /metrics']);
  });

  it('gives the same status, headers and bytes as the fastify route through inject(), in every format, gzip or not, GET and HEAD', async () => {
    const { port } = await serve();
    for (const accept of Object.values(ACCEPT)) {
      for (const gzip of [false, true]) {
        for (const method of ['GET', 'HEAD'] as const) {
          const headers = { accept, ...(gzip ? { 'accept-encoding': 'gzip' } : {}) };
          const direct = await get(port, { method, headers });
          const routed = await app!.inject({ url: '/metrics', method, headers });
          const what = `${method} ${accept} gzip=${gzip}`;
          expect(direct.status, what).toBe(200);
          expect(routed.statusCode, what).toBe(200);
          expect(own(direct.headers), what).toEqual(own(routed.headers));
          // inject() keeps what a HEAD handler writes; node:http drops it.
          if (method === 'HEAD') expect(direct.body.length, what).toBe(0);
          else {
            expect(direct.body.equals(routed.rawPayload), what).toBe(true);
            expect(Number(direct.headers['content-length']), what).toBe(direct.body.length);
            const plain = gzip ? gunzipSync(direct.body) : direct.body;
            if (accept !== ACCEPT.protobuf) expect(plain.toString(), what).toContain('route_test_jobs{queue="q299"} 299');
          }
        }
      }
    }
  });

  it('answers a render that fails with the 500 fastify gives', async () => {
    const { port } = await serve(() => () => Promise.reject(new Error('render failed')));
    const direct = await get(port, { headers: { 'accept-encoding': 'gzip' } });
    const routed = await app!.inject({ url: '/metrics', headers: { 'accept-encoding': 'gzip' } });
    expect(direct.status).toBe(500);
    expect(routed.statusCode).toBe(500);
    expect(JSON.parse(direct.body.toString())).toEqual({ statusCode: 500, error: 'Internal Server Error', message: 'render failed' });
    expect(JSON.parse(routed.body)).toEqual(JSON.parse(direct.body.toString()));
    expect(direct.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it("answers fastify's 503 to a scrape whose request ends once the app closes", async () => {
    let renders = 0;
    const { port } = await serve((render) => (f, gz) => {
      renders += 1;
      return render(f, gz);
    });
    const accepted = new Promise<Socket>((resolve) => app!.server.once('connection', resolve));
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const serverSide = await accepted;
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // Headers begun before the close (the connection is not idle, so the close does not cut it), ended after.
    socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n');
    await waitUntil(() => serverSide.bytesRead > 0);
    const closed = app!.close();
    socket.write('\r\n');
    await ended;
    await closed;
    app = undefined;
    expect(received).toMatch(/^HTTP\/1\.1 503 /);
    expect(received).toMatch(/\r\nConnection: close\r\n/i);
    expect(received).toContain('{"error":"Service Unavailable","message":"Service Unavailable","statusCode":503}');
    expect(renders).toBe(0);
  });
});

async function waitUntil(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}
