// Adversary (session 24): /metrics content-coding negotiation over real HTTP. A client that refuses gzip
// (`Accept-Encoding: gzip;q=0`, RFC 9110 12.5.3) got a gzipped body anyway (the header was matched for the word);
// `GZIP` (codings are case-insensitive) got a plain one. Ground truth: the plain text body of the same state.
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { QueueAccounting } from '../src/events/accounting.js';
import { acceptsGzip } from '../src/http/app.js';
import { EventMetrics } from '../src/metrics/event-metrics.js';
import { Exposition } from '../src/metrics/exposition.js';
import { serveMetrics } from './helpers/metrics-app.js';

function get(port: number, encoding: string): Promise<{ encoding: string | undefined; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request({ port, host: '127.0.0.1', path: '/metrics', headers: { 'accept-encoding': encoding } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ encoding: res.headers['content-encoding'], body: Buffer.concat(chunks) }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

const queueLines = (text: string) => text.split('\n').filter((l) => l.includes('queue="'));

describe('adversary s24: Accept-Encoding', () => {
  it('gzip only where the client accepts it, and the same series either way', async () => {
    const e = new Exposition(60_000);
    const m = new EventMetrics(e);
    const a = new QueueAccounting();
    a.count('added', '');
    await m.update({ leader: true, queues: [{ queue: { prefix: 'bull', name: 'q' }, stats: a.toStats() }] });
    const { port, close } = await serveMetrics(e);
    try {
      const plain = queueLines((await get(port, 'identity')).body.toString());
      expect(plain.length).toBeGreaterThan(0);
      for (const [header, gzipped] of [
        ['gzip', true],
        ['GZIP', true],
        ['deflate, gzip;q=0.5', true],
        ['x-gzip', true],
        ['gzip;q=0', false],
        ['gzip; q=0.000, identity', false],
        ['br', false],
        ['', false],
      ] as const) {
        const r = await get(port, header);
        expect(r.encoding === 'gzip', header).toBe(gzipped);
        expect(queueLines((gzipped ? gunzipSync(r.body) : r.body).toString()), header).toEqual(plain);
      }
    } finally {
      await close();
    }
  });

  it('acceptsGzip follows RFC 9110 weights', () => {
    expect(acceptsGzip(undefined)).toBe(false);
    expect(acceptsGzip('gzip, deflate')).toBe(true);
    expect(acceptsGzip('gzip;q=0')).toBe(false);
    expect(acceptsGzip('notgzip')).toBe(false);
  });
});
