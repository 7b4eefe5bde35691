// Adversary (session 24): /metrics bodies of a real sidecar process with traffic, after the gzip fed from fragments
// and the protobuf rendered only while scraped: scraped text+gzip only for a while (as Prometheus does), then at once
// a first protobuf scrape (plain and gzipped), OpenMetrics, text, a HEAD, a scrape aborted after its first bytes and
// a slow reader. Every body whole and parseable (promtool for the text), the gzipped one equal to a text body, and at
// rest every format's queue series equal to each other and to Redis (getJobCounts, the jobs added and completed).
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { processHarness } from './helpers/process-harness.js';
import { parsePromText, seriesKey, type Series } from './helpers/prom-text.js';
import { protobufSeries } from './helpers/protobuf-series.js';

const harness = processHarness();
const PROTO = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';
const ACCEPT = { text: 'text/plain', openmetrics: 'application/openmetrics-text;version=1.0.0', protobuf: PROTO } as const;

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request; `slowMs`: pause the socket that long after the first chunk; `abort`: destroy after the first chunk. */
function get(port: number, o: { accept?: string; gzip?: boolean; method?: string; slowMs?: number; abort?: boolean }): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        port,
        host: '127.0.0.1',
        path: '/metrics',
        method: o.method ?? 'GET',
        headers: { accept: o.accept ?? '*/*', ...(o.gzip ? { 'accept-encoding': 'gzip' } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let first = true;
        res.on('data', (d: Buffer) => {
          chunks.push(d);
          if (first && o.abort) {
            req.destroy();
            resolve({ status: -1, headers: res.headers, body: Buffer.concat(chunks) });
          }
          if (first && o.slowMs) {
            res.pause();
            setTimeout(() => res.resume(), o.slowMs);
          }
          first = false;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', (e) => (o.abort ? undefined : reject(e)));
      },
    );
    req.on('error', (e) => (o.abort ? undefined : reject(e)));
    req.end();
  });
}

const queueSeries = (s: Series) => new Map([...s].filter(([k]) => k.includes('queue="') && k.startsWith('bullmq_')));

function promtool(text: Buffer): string {
  const r = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: text });
  // Lint warnings (e.g. counters' names) are not format errors; an error names a line.
  return `${r.stdout.toString()}${r.stderr.toString()}`;
}

describe('adversary s24: bodies of every format while traffic runs and a first protobuf scrape', () => {
  it('every body whole, gzip equal to text, formats agree with each other and with Redis at rest', async () => {
    const { bull, sidecar } = await harness.start();
    const names = Array.from({ length: 30 }, (_, i) => (i % 5 === 0 ? `q"${i}\\x` : `q-${i}`));
    const queues = names.map((n) => bull.queue(n));
    for (const q of queues) await q.add('seed', {});
    const s = await sidecar({ extraArgs: ['--collect-busy-max', '7.5'] });
    // Followed by the reader (its lag series) before any job is counted: it starts at each stream's end.
    await waitFor(
      'every queue followed',
      async () => {
        const m = await s.metrics();
        return names.every((n) => m.has(seriesKey('bullmq_exporter_events_lag_seconds', { prefix: 'bull', queue: n })));
      },
      60_000,
      500,
    );
    let added = 0;
    let completed = 0;
    for (const n of names.slice(0, 10)) bull.worker(n, async () => undefined, { concurrency: 5 }).on('completed', () => (completed += 1));
    let on = true;
    const traffic = (async () => {
      for (let i = 0; on; i += 1) {
        await queues[i % queues.length]!.add('j', { i }, { priority: i % 7 === 0 ? 2 : undefined, delay: i % 11 === 0 ? 500 : undefined });
        added += 1;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      // Text with gzip only, a while (the parts lose their protobuf, if they had any).
      for (let i = 0; i < 5; i += 1) {
        const z = await get(s.port, { accept: ACCEPT.text, gzip: true });
        expect(z.headers['content-encoding']).toBe('gzip');
        expect(promtool(gunzipSync(z.body))).not.toMatch(/error/i);
        await new Promise((r) => setTimeout(r, 1000));
      }
      // All at once, the protobuf ones first ever.
      const all = await Promise.all([
        get(s.port, { accept: ACCEPT.protobuf }),
        get(s.port, { accept: ACCEPT.protobuf, gzip: true }),
        get(s.port, { accept: ACCEPT.openmetrics, gzip: true }),
        get(s.port, { accept: ACCEPT.text }),
        get(s.port, { accept: ACCEPT.text, gzip: true, slowMs: 1500 }),
        get(s.port, { accept: ACCEPT.protobuf, gzip: true, abort: true }),
        get(s.port, { accept: ACCEPT.text, method: 'HEAD' }),
      ]);
      const [pb, pbz, omz, txt, slow, , head] = all;
      expect(String(pb!.headers['content-type'])).toContain('application/vnd.google.protobuf');
      expect(protobufSeries(pb!.body).size).toBeGreaterThan(100);
      expect(protobufSeries(gunzipSync(pbz!.body)).size).toBeGreaterThan(100);
      expect(gunzipSync(omz!.body).toString().endsWith('# EOF\n')).toBe(true);
      expect(promtool(txt!.body)).not.toMatch(/error/i);
      expect(promtool(gunzipSync(slow!.body))).not.toMatch(/error/i);
      expect(head!.status).toBe(200);
      expect(head!.body.length).toBe(0);
    } finally {
      on = false;
      await traffic;
    }
    // At rest: every format's queue series equal, and equal to Redis.
    const rest = await waitFor(
      'every format equal to Redis at rest',
      async () => {
        const text = parsePromText((await get(s.port, { accept: ACCEPT.text })).body.toString());
        const gz = parsePromText(gunzipSync((await get(s.port, { accept: ACCEPT.text, gzip: true })).body).toString());
        const om = parsePromText(
          gunzipSync((await get(s.port, { accept: ACCEPT.openmetrics, gzip: true })).body)
            .toString()
            .replace(/# EOF\n$/, ''),
        );
        const pbs = protobufSeries(gunzipSync((await get(s.port, { accept: ACCEPT.protobuf, gzip: true })).body));
        let total = 0;
        let done = 0;
        for (const q of queues) {
          const c = await q.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
          for (const [st, n] of Object.entries(c)) {
            const shown = text.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: q.name, state: st }));
            if (shown !== n) {
              console.log(`${q.name} ${st}: shown ${shown}, Redis ${n}`);
              return false;
            }
          }
          total += text.get(seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: q.name })) ?? 0;
          done += text.get(seriesKey('bullmq_jobs_completed_total', { prefix: 'bull', queue: q.name })) ?? 0;
        }
        if (total !== added || done !== completed) {
          console.log(`added ${total} vs ${added}, completed ${done} vs ${completed}`);
          return false;
        }
        const r = { text: queueSeries(text), gz: queueSeries(gz), om: queueSeries(om), pb: queueSeries(pbs) };
        // Four scrapes one after another: a collection (every backlog's age moves at each) or a read-back (a reader's
        // lag) can land between them, and a scrape may be answered from a body written before one under way. Compared
        // when none did; a gzip or protobuf that never agrees with the text times this out.
        const moved = [...r.text].filter(([k, v]) => r.gz.get(k) !== v || (r.pb.has(k) && r.pb.get(k) !== v));
        if (moved.length > 0 || r.gz.size !== r.text.size) {
          console.log(`${moved.length} series differ between the scrapes (first: ${moved[0]?.[0]}); again`);
          return false;
        }
        return r;
      },
      60_000,
      1000,
    );
    expect([...rest.gz]).toEqual([...rest.text]);
    // OpenMetrics names counters without _total in TYPE but keeps the samples' names; protobuf: the families' samples.
    for (const [k, v] of rest.text) {
      if (rest.pb.has(k)) expect(rest.pb.get(k)).toBe(v);
    }
    expect(rest.pb.size).toBeGreaterThan(0);
  }, 180_000);
});
