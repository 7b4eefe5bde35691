// Adversarial (session 26): /metrics answered on node:http ahead of fastify's router. A real sidecar process, raw
// HTTP/1.1 over TCP (so nothing normalises the request line or headers), while collections land every 0.2 s.
// Every expectation below is what fastify's route answered before the change (hub main 48c6f9e, checked there):
// status, content type and encoding, cache-control, vary, a content-length that matches the bytes sent, a body in the
// negotiated format; 404 for every other method or path spelling; requests pipelined on one connection answered in
// order; aborted and slow readers neither break the process nor get a cut or padded body.
import { connect, type Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { processHarness } from './helpers/process-harness.js';

const harness = processHarness();

interface Res {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Sends `raw` (one or more requests) on one connection and parses one response per entry of `methods`. */
function exchange(port: number, raw: string, methods: string[], opts: { pauseMs?: number } = {}): Promise<Res[]> {
  return new Promise((resolve, reject) => {
    const sock: Socket = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const out: Res[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no complete answer: ${out.length} of ${methods.length}, ${buf.length} bytes pending`));
    }, 30_000);
    const parse = () => {
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0 || out.length === methods.length) return;
        const [line = '', ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
        const headers: Record<string, string> = {};
        for (const l of lines) {
          const k = l.indexOf(':');
          headers[l.slice(0, k).trim().toLowerCase()] = l.slice(k + 1).trim();
        }
        const status = Number(line.split(' ')[1]);
        const head = methods[out.length] === 'HEAD';
        let len = head ? 0 : Number(headers['content-length'] ?? NaN);
        let body: Buffer;
        let used: number;
        if (!head && headers['transfer-encoding'] === 'chunked') {
          // Dechunk (fastify's 404s are sent with a length; anything else chunked is read whole too).
          const parts: Buffer[] = [];
          let p = end + 4;
          for (;;) {
            const le = buf.indexOf('\r\n', p);
            if (le < 0) return;
            const n = parseInt(buf.subarray(p, le).toString(), 16);
            if (buf.length < le + 2 + n + 2) return;
            parts.push(buf.subarray(le + 2, le + 2 + n));
            p = le + 2 + n + 2;
            if (n === 0) break;
          }
          body = Buffer.concat(parts);
          used = p;
        } else {
          if (!Number.isFinite(len)) len = 0;
          if (buf.length < end + 4 + len) return;
          body = buf.subarray(end + 4, end + 4 + len);
          used = end + 4 + len;
        }
        out.push({ status, headers, body });
        buf = buf.subarray(used);
        if (out.length === methods.length) {
          clearTimeout(timer);
          // Nothing may follow the last answer (a HEAD that sent its body would leave bytes here).
          setTimeout(() => {
            sock.destroy();
            if (buf.length > 0) reject(new Error(`${buf.length} bytes after the last answer: ${buf.subarray(0, 80).toString()}`));
            else resolve(out);
          }, 50);
        }
      }
    };
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (opts.pauseMs) {
        sock.pause();
        setTimeout(() => sock.resume(), opts.pauseMs);
      }
      parse();
    });
    sock.on('error', reject);
    sock.write(raw);
  });
}

const req = (method: string, target: string, headers: Record<string, string> = {}) =>
  `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;

const TEXT = 'text/plain; version=0.0.4; charset=utf-8';
const OM = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
const PROTO = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';
const PROTO_ACCEPT =
  'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2';

/** What every scrape answer carries (fastify's route set these). */
function expectScrape(r: Res, contentType: string, gzip: boolean, head = false) {
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toBe(contentType);
  expect(r.headers['cache-control']).toBe('no-store');
  expect(r.headers.vary).toBe('accept, accept-encoding');
  expect(r.headers['content-encoding']).toBe(gzip ? 'gzip' : undefined);
  expect(r.headers['transfer-encoding']).toBeUndefined();
  const len = Number(r.headers['content-length']);
  expect(len).toBeGreaterThan(100);
  if (head) return;
  expect(r.body.length).toBe(len);
  const body = gzip ? gunzipSync(r.body) : r.body;
  // The exposition with the queues, or the one a sidecar serves while its data is stale (`up 0`, queue gauges absent:
  // at --collect-interval 0.2, three intervals without a collection on a loaded machine), never anything else.
  if (contentType === TEXT) expect(/\nbullmq_queue_jobs\{|\nbullmq_exporter_up 0\n/.test(body.toString())).toBe(true);
  if (contentType === OM) expect(body.toString().endsWith('# EOF\n')).toBe(true);
}

describe('adversary s26: /metrics on node:http, as fastify served it', () => {
  it('every format, gzip or not, GET and HEAD, odd headers and query strings; 404 for other methods and spellings; pipelined in order', async () => {
    const { bull, sidecar } = await harness.start();
    for (const n of ['a', 'b', 'c']) await bull.queue(n).add('x', {});
    const s = await sidecar({ queues: 'a,b,c' });
    // Queue series, not just the process's own (about 100 before the first collection).
    await waitFor('queues exported', async () => [...(await s.metrics()).keys()].some((k) => k.startsWith('bullmq_queue_jobs{')), 20_000, 200);
    const one = async (method: string, target: string, headers: Record<string, string> = {}) =>
      (await exchange(s.port, req(method, target, headers), [method]))[0] as Res;

    const formats: Array<[Record<string, string>, string, boolean]> = [
      [{}, TEXT, false],
      [{ accept: '*/*' }, TEXT, false],
      [{ accept: 'text/html' }, TEXT, false],
      [{ accept: 'application/openmetrics-text; version=1.0.0' }, OM, false],
      [{ accept: 'APPLICATION/OPENMETRICS-TEXT;q=0.9, text/plain;q=0.1' }, OM, false],
      [{ accept: 'application/openmetrics-text;q=0, text/plain' }, TEXT, false],
      [{ accept: PROTO_ACCEPT }, PROTO, false],
      [{ accept: 'application/vnd.google.protobuf' }, TEXT, false],
      [{ 'accept-encoding': 'gzip' }, TEXT, true],
      [{ 'accept-encoding': 'GZIP;q=0.5, identity' }, TEXT, true],
      [{ 'accept-encoding': 'x-gzip' }, TEXT, true],
      [{ 'accept-encoding': 'gzip;q=0' }, TEXT, false],
      [{ 'accept-encoding': '*' }, TEXT, false],
      [{ 'accept-encoding': 'br, deflate' }, TEXT, false],
      [{ accept: 'application/openmetrics-text; version=1.0.0', 'accept-encoding': 'gzip' }, OM, true],
      [{ accept: PROTO_ACCEPT, 'accept-encoding': 'gzip' }, PROTO, true],
    ];
    for (const [headers, type, gzip] of formats) {
      for (const target of ['/metrics', '/metrics?', '/metrics?x=1&y=%2F', '/metrics?/admin/queues']) {
        expectScrape(await one('GET', target, headers), type, gzip);
        expectScrape(await one('HEAD', target, headers), type, gzip, true);
      }
    }

    // Other methods and spellings: fastify's 404 (its JSON body), never a scrape.
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      const r = await one(method, '/metrics', { 'content-length': '0' });
      expect([method, r.status]).toEqual([method, 404]);
      expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    }
    // What fastify's router made of each spelling (a fragment is cut, as a query string is; a percent-encoded letter is decoded; an absolute-form target is taken by its path).
    const spellings: Record<string, number> = {
      '/metrics/': 404,
      '/METRICS': 404,
      '/Metrics': 404,
      '//metrics': 404,
      '/metrics/x': 404,
      '/metricsx': 404,
      '/metrics%3F': 404,
      '/%6Detrics': 200,
      '/metrics#x': 200,
      '/metrics;x': 404,
      'http://127.0.0.1/metrics': 200,
    };
    const got: Record<string, number> = {};
    for (const target of Object.keys(spellings)) {
      const r = await one('GET', target);
      got[target] = r.status;
      if (r.status === 200) expectScrape(r, TEXT, false);
      else expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    }
    expect(got).toEqual(spellings);
    // Admin surface: off in this sidecar (no token), and /metrics spellings never reach it.
    for (const target of ['/admin/queues', '/metrics/../admin/queues', '/metrics/%2E%2E/admin/queues']) {
      expect([target, (await one('GET', target)).status]).toEqual([target, 404]);
    }

    // Pipelined on one keep-alive connection: answered in order, HEAD without a body, the next answer right after.
    const pipelined = await exchange(
      s.port,
      [
        req('GET', '/metrics', { 'accept-encoding': 'gzip' }),
        req('HEAD', '/metrics'),
        req('GET', '/livez'),
        req('GET', '/metrics', { accept: 'application/openmetrics-text; version=1.0.0' }),
        req('POST', '/metrics', { 'content-length': '3' }) + 'abc',
        req('GET', '/metrics'),
      ].join(''),
      ['GET', 'HEAD', 'GET', 'GET', 'POST', 'GET'],
    );
    expectScrape(pipelined[0] as Res, TEXT, true);
    expectScrape(pipelined[1] as Res, TEXT, false, true);
    expect(pipelined[2]?.status).toBe(200);
    expect(JSON.parse(String(pipelined[2]?.body))).toEqual({ status: 'ok' });
    expectScrape(pipelined[3] as Res, OM, false);
    expect(pipelined[4]?.status).toBe(404);
    expectScrape(pipelined[5] as Res, TEXT, false);
  }, 110_000);

  it('aborted and slow readers while collections land: the process keeps serving whole bodies', async () => {
    const { bull, sidecar } = await harness.start();
    const names = Array.from({ length: 300 }, (_, i) => `q${i}`);
    for (const n of names) await bull.queue(n).add('x', {});
    const s = await sidecar({ queues: names.join(',') });
    await waitFor('queues exported', async () => (await s.metrics()).size > 3000, 30_000, 200);

    // 100 scrapes cut right after the request line, at random points of their answers.
    for (let i = 0; i < 100; i++) {
      const sock = connect(s.port, '127.0.0.1');
      sock.on('error', () => undefined);
      sock.write(req('GET', '/metrics', i % 2 ? { 'accept-encoding': 'gzip' } : {}));
      await new Promise((r) => setTimeout(r, i % 7));
      sock.destroy();
    }
    // Slow readers: pause 200 ms after every chunk, several at once, plain and gzip, over several collections.
    const slow = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        exchange(s.port, req('GET', '/metrics', i % 2 ? { 'accept-encoding': 'gzip' } : {}) + req('GET', '/livez'), ['GET', 'GET'], { pauseMs: 200 }),
      ),
    );
    for (const [i, [m, l]] of slow.entries()) {
      expectScrape(m as Res, TEXT, i % 2 === 1);
      expect(l?.status).toBe(200);
    }
    expect(s.alive()).toBe(true);
    expectScrape((await exchange(s.port, req('GET', '/metrics'), ['GET']))[0] as Res, TEXT, false);
  }, 110_000);
});
