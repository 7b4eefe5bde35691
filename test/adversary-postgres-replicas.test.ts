// Adversarial probe (issue 18): two `queuelens sidecar --backend postgres` processes; the event leader SIGKILLed in
// the middle of a workload (producers and workers running), a third replica started afterwards. Ground truth: the
// event table. The survivor takes over and every replica renders the same counters, equal to the table.
import { describe, expect, it } from 'vitest';
import { spawnCli, type CliProcess } from './helpers/cli.js';
import { eventCounters, usePostgresSuite } from './helpers/postgres-suite.js';
import { parsePromText, type Series } from './helpers/prom-text.js';
import { freePort } from './helpers/redis-server.js';

const POLL = { timeout: 120_000, interval: 300 };
const Q = 'replicated';

describe('adversary: sidecar replicas and a leader SIGKILL on PostgreSQL', () => {
  const pg = usePostgresSuite();

  it('renders the same exact counters on every replica after the leader is killed mid-workload', async () => {
    const q = pg.bull.queue(Q);
    await q.add('seed', {});
    const procs: CliProcess[] = [];
    const start = async () => {
      const port = await freePort();
      const p = spawnCli(
        [
          'sidecar',
          '--backend',
          'postgres',
          '--port',
          String(port),
          '--host',
          '127.0.0.1',
          '--collect-interval',
          '0.3',
          '--discovery-interval',
          '0.5',
          '--events-lease',
          '2',
        ],
        { DATABASE_URL: pg.server.url, LOG_LEVEL: 'info' },
      );
      procs.push(p);
      return { p, port };
    };
    const scrape = async (port: number): Promise<Series | undefined> => {
      try {
        return parsePromText(await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(3_000) })).text());
      } catch {
        return undefined;
      }
    };
    const counters = (m: Series | undefined) => m && eventCounters(m, Q, ['added', 'completed', 'failed', 'retried', 'read', 'lost']);
    try {
      const a = await start();
      const b = await start();
      await expect
        .poll(async () => [(await scrape(a.port))?.get('bullmq_exporter_leader'), (await scrape(b.port))?.get('bullmq_exporter_leader')].sort(), POLL)
        .toEqual([0, 1]);
      const leader = (await scrape(a.port))?.get('bullmq_exporter_leader') === 1 ? a : b;
      const other = leader === a ? b : a;

      // The workload: 40 jobs, every fourth failing once then succeeding (attempts 2, no backoff).
      pg.bull.worker(
        Q,
        async (job) => {
          if (Number(job.data.i) % 4 === 0 && job.attemptsMade === 0) throw new Error('once');
          await new Promise((r) => setTimeout(r, 10));
          return 1;
        },
        { concurrency: 3 },
      );
      const produce = (async () => {
        for (let i = 0; i < 40; i++) await q.add('j', { i }, { attempts: 2 });
      })();
      await expect.poll(async () => counters(await scrape(leader.port))?.completed ?? 0, POLL).toBeGreaterThan(3);
      leader.p.proc.kill('SIGKILL');
      await produce;
      await expect.poll(async () => (await q.getJobCounts('completed')).completed, POLL).toBe(41);
      await expect.poll(async () => (await scrape(other.port))?.get('bullmq_exporter_leader'), POLL).toBe(1);

      const rows = (
        await pg.server.pool(1).query<{ event: string; n: string }>('SELECT event, count(*)::text AS n FROM bullmq.event WHERE queue = $1 GROUP BY event', [Q])
      ).rows;
      const n = (k: string) => Number(rows.find((r) => r.event === k)?.n ?? 0);
      const truth = {
        added: n('added'),
        completed: n('completed'),
        failed: n('failed'),
        retried: 10,
        read: rows.reduce((s, r) => s + Number(r.n), 0),
        lost: 0,
      };
      expect([truth.added, truth.completed, truth.failed]).toEqual([41, 41, 0]);
      await expect.poll(async () => counters(await scrape(other.port)), POLL).toEqual(truth);
      const c = await start();
      await expect.poll(async () => counters(await scrape(c.port)), POLL).toEqual(truth);
    } finally {
      for (const p of procs) p.proc.kill('SIGKILL');
      await Promise.all(procs.map((p) => p.exited));
    }
  }, 300_000);
});
