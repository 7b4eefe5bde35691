// The HTTP surface through inject(): exposition formats, liveness, readiness, health thresholds.
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullFixtures } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let bull: BullFixtures;

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  const q = bull.queue('backlog');
  for (let i = 0; i < 5; i += 1) await q.add('x', {}, { timestamp: Date.now() - 600_000 });
  await bull.queue('fine').add('x', {});
});

afterAll(async () => {
  await bull?.close();
  await redis?.stop();
});

describe('HTTP', () => {
  it('serves Prometheus text by default and OpenMetrics when asked', async () => {
    const s = await testSidecar(redis.url);
    await s.refresh();
    const text = await s.app.inject({ url: '/metrics' });
    expect(text.statusCode).toBe(200);
    expect(text.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text.body).toContain('# HELP bullmq_queue_jobs ');
    expect(text.body).toContain('bullmq_queue_jobs{prefix="bull",queue="backlog",state="waiting"} 5');
    expect(text.body).toContain('process_resident_memory_bytes');

    const om = await s.app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0' } });
    expect(om.headers['content-type']).toMatch(/^application\/openmetrics-text/);
    expect(om.body.trimEnd().endsWith('# EOF')).toBe(true);
    expect(om.body.match(/# EOF/g)).toHaveLength(1);
    expect(om.body).toContain('bullmq_exporter_collect_errors_total 0');

    // Prometheus asks for gzip.
    const gz = await s.app.inject({ url: '/metrics', headers: { 'accept-encoding': 'gzip' } });
    expect(gz.headers['content-encoding']).toBe('gzip');
    // The body also depends on Accept now (protobuf, OpenMetrics, text).
    expect(gz.headers['vary']).toBe('accept, accept-encoding');
    expect(gunzipSync(gz.rawPayload).toString()).toContain('bullmq_queue_jobs{prefix="bull",queue="backlog",state="waiting"} 5');
    expect(text.headers['content-encoding']).toBeUndefined();
    await s.close();
  });

  it('keeps counters named *_total in Prometheus text after an OpenMetrics scrape (prom-client renames in place)', async () => {
    const s = await testSidecar(redis.url);
    await s.refresh();
    const om = await s.app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0' } });
    expect(om.body).toContain('# TYPE bullmq_exporter_collect_errors counter');
    expect(om.body).toContain('bullmq_exporter_collect_errors_total 0');
    await s.refresh(); // a new collection: the cached text is rendered again
    const text = await s.app.inject({ url: '/metrics' });
    expect(text.body).toContain('# TYPE bullmq_exporter_collect_errors_total counter');
    expect(text.body).toContain('\nbullmq_exporter_collect_errors_total 0\n');
    await s.close();
  });

  it('is unavailable before the first collection and ok after it; /livez always answers', async () => {
    const s = await testSidecar(redis.url);
    const early = await s.app.inject({ url: '/health' });
    expect(early.statusCode).toBe(503);
    expect(early.json().reasons).toContain('no collection has run yet');
    expect((await s.app.inject({ url: '/livez' })).statusCode).toBe(200);
    await s.refresh();
    const ok = await s.app.inject({ url: '/health' });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ status: 'ok', queues: 2 });
    expect((await s.app.inject({ url: '/readyz' })).statusCode).toBe(200);
    await s.close();
  });

  it('turns /health degraded on a queue threshold and names the queue, while /readyz stays ready', async () => {
    const s = await testSidecar(redis.url, { healthMaxWaiting: '3', healthMaxOldestAge: '300' });
    await s.refresh();
    const res = await s.app.inject({ url: '/health' });
    expect(res.statusCode).toBe(503);
    const body = res.json();
    expect(body.status).toBe('degraded');
    expect(body.degradedQueues).toHaveLength(1);
    expect(body.degradedQueues[0].queue).toBe('backlog');
    expect(body.degradedQueues[0].problems.join(' ')).toMatch(/5 jobs waiting > 3.*oldest waiting job/);
    expect((await s.app.inject({ url: '/readyz' })).statusCode).toBe(200);
    await s.close();
  });

  it('answers 404 for unknown routes', async () => {
    const s = await testSidecar(redis.url);
    expect((await s.app.inject({ url: '/nope' })).statusCode).toBe(404);
    await s.close();
  });
});
