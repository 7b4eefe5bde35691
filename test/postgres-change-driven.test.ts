// Change-driven collection on PostgreSQL (postgres/snapshot.ts with collector/change-plan.ts, postgres/snapshot-store.ts
// with collector/shared-snapshot.ts): with the event follower on, a queue whose events did not move is not read again
// until the sweep; one whose events moved is collected at once; what writes no event (a hand edit, job.remove()) is
// caught by the sweep, after which every gauge equals a full collection's; a replica renders the leader's snapshot.
// Ground truth: the statements the sidecar sent (a wrapper of the pg client's query, in this process), what the test
// enqueued and what BullMQ's tables hold.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { usePostgresSuite, type TestPostgresSidecar } from './helpers/postgres-suite.js';
import { expectKeptEqualsFull } from './helpers/kept-vs-full.js';
import { seriesKey } from './helpers/prom-text.js';

interface Sent {
  client: pg.Client;
  text: string;
  values: unknown[];
}

/** Every statement any pg client of this process sends, while `recording`. */
const sent: Sent[] = [];
let recording = false;
const original = pg.Client.prototype.query;

beforeAll(() => {
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    if (recording) {
      const [a, b] = args as [string | { text?: string; values?: unknown[] }, unknown];
      const text = typeof a === 'string' ? a : (a?.text ?? '');
      const values = (typeof a === 'object' && a?.values) || (Array.isArray(b) ? b : []);
      sent.push({ client: this, text, values });
    }
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
});

afterAll(() => {
  pg.Client.prototype.query = original;
});

function record(): { stop(): Sent[] } {
  sent.length = 0;
  recording = true;
  return {
    stop() {
      recording = false;
      return sent.splice(0);
    },
  };
}

/** The collection's batch statement over BullMQ's tables (its first parameter: the queue names it reads). */
const isQueueRead = (s: Sent) => s.text.includes('head_eligible_ms');
const readsOf = (log: Sent[], queue: string) => log.filter((s) => isQueueRead(s) && Array.isArray(s.values[0]) && (s.values[0] as string[]).includes(queue));

const gauge = async (s: TestPostgresSidecar, name: string, labels: Record<string, string>) => (await s.scrape()).get(seriesKey(name, labels));
const jobs = (s: TestPostgresSidecar, queue: string, state: string) => gauge(s, 'bullmq_queue_jobs', { prefix: 'bullmq', queue, state });

/** The follower follows `queue` (its accounting is rendered) and `n` collections ran since. */
async function followed(s: TestPostgresSidecar, queue: string, n = 2): Promise<void> {
  await waitFor(`${queue} followed`, async () => (await gauge(s, 'bullmq_exporter_events_lag_seconds', { prefix: 'bullmq', queue })) !== undefined, 60_000);
  const seq = s.snapshot()?.seq ?? 0;
  await waitFor(`${n} collections`, () => (s.snapshot()?.seq ?? 0) >= seq + n, 60_000);
}

describe('change-driven collection on PostgreSQL', () => {
  const pgs = usePostgresSuite();

  it('does not read a queue again between sweeps while its events do not move; reads the one whose events moved', async () => {
    await pgs.bull.queue('cd-idle').add('x', {});
    const busy = pgs.bull.queue('cd-busy');
    await busy.add('x', {});
    const lines: string[] = [];
    const s = await pgs.sidecar(
      {
        queues: 'cd-idle,cd-busy',
        collectInterval: '0.2',
        collectSweep: '3600',
        collectSweepIdle: '3600',
        pgOwnSchema: 'queuelens_idle',
        logLevel: 'info',
      },
      lines,
    );
    await s.start();
    await followed(s, 'cd-idle', 5);
    await followed(s, 'cd-busy');

    // Measured over a window in which the follower kept its term and every collection succeeded. A term started again
    // (a pass failed under load, a renewal came late) follows every queue anew and marks it changed, and a failed
    // collection drops what was kept: the collection then rightly reads cd-idle. Such a window proves nothing, and the
    // next one is measured.
    const termRestarted = (from: number) =>
      lines.slice(from).some((l) => /event follower resumes|pass failed|lost event reader leadership|collection failed/.test(l));
    let waiting = 1;
    for (let attempt = 1; ; attempt += 1) {
      const mark = lines.length;
      const rec = record();
      const seq = s.snapshot()!.seq;
      for (let i = 0; i < 3; i += 1) {
        await busy.add('y', { i });
        await waitFor('a collection after the change', () => s.snapshot()!.seq > seq + 2 * (i + 1));
      }
      waiting += 3;
      await waitFor('busy depth', async () => (await jobs(s, 'cd-busy', 'waiting')) === waiting);
      const log = rec.stop();
      if (termRestarted(mark) && attempt < 5) continue;
      expect(s.snapshot()!.seq).toBeGreaterThanOrEqual(seq + 6);
      // The control: the collection read busy after its events moved.
      expect(readsOf(log, 'cd-busy').length).toBeGreaterThan(0);
      expect(readsOf(log, 'cd-idle')).toEqual([]);
      break;
    }
    // And what it kept is still exact.
    expect(await jobs(s, 'cd-idle', 'waiting')).toBe(1);
    await s.close();
  });

  it('an idle event follower reads the sequence head, not every queue’s rows, and still sees the next row', async () => {
    const q = pgs.bull.queue('cd-quiet');
    await q.add('x', {});
    const s = await pgs.sidecar({ queues: 'cd-quiet', collectInterval: '0.2', pgOwnSchema: 'queuelens_quiet' });
    await s.start();
    await followed(s, 'cd-quiet', 2);
    // The watermark reaches the head a poll or two after the last row: then the follower is quiet.
    await waitFor('quiet', () => {
      const rec = record();
      return new Promise<boolean>((resolve) => setTimeout(() => resolve(rec.stop().filter((c) => c.text.includes('first_id')).length === 0), 2_500));
    });
    const rec = record();
    await new Promise((r) => setTimeout(r, 3_000));
    const log = rec.stop();
    // The fallback poll comes round every second: it read only the head.
    expect(log.filter((c) => c.text.includes('event_seq') && !c.text.includes('first_id')).length).toBeGreaterThanOrEqual(2);
    expect(log.filter((c) => c.text.includes('first_id'))).toEqual([]);
    await q.add('y', {});
    await waitFor('next row counted', async () => (await gauge(s, 'bullmq_jobs_added_total', { prefix: 'bullmq', queue: 'cd-quiet' })) === 2);
    await waitFor('depth', async () => (await jobs(s, 'cd-quiet', 'waiting')) === 2);
    await s.close();
  });

  it('with events off reads every queue at every collection, as before', async () => {
    await pgs.bull.queue('cd-off').add('x', {});
    const s = await pgs.sidecar({ queues: 'cd-off', events: 'false', collectInterval: '0.2' });
    await s.start();
    await waitFor('first collection', async () => (await jobs(s, 'cd-off', 'waiting')) === 1);
    const rec = record();
    const seq = s.snapshot()!.seq;
    await waitFor('three collections', () => s.snapshot()!.seq >= seq + 3);
    expect(readsOf(rec.stop(), 'cd-off').length).toBeGreaterThanOrEqual(2);
    await s.close();
  });

  it("shows a changed queue's depth and counters after its events, without waiting for an interval or the sweep", async () => {
    const q = pgs.bull.queue('cd-prompt');
    await q.add('first', {});
    // Neither the interval nor the sweep comes round during the test: only the change can start a collection.
    const s = await pgs.sidecar({
      queues: 'cd-prompt',
      collectInterval: '3600',
      collectSweep: '3600',
      collectSweepIdle: '3600',
      pgOwnSchema: 'queuelens_prompt',
    });
    await s.start();
    await followed(s, 'cd-prompt', 0);
    await waitFor('first depth', async () => (await jobs(s, 'cd-prompt', 'waiting')) === 1);
    for (let i = 0; i < 3; i += 1) await q.add('more', { i });
    const truth = (await pgs.bull.countsOf('cd-prompt')).waiting;
    expect(truth).toBe(4);
    await waitFor('depth on /metrics', async () => (await jobs(s, 'cd-prompt', 'waiting')) === truth);
    // A first leader counts every row the event table holds: the job added before it started too.
    const db = pgs.server.pool(1);
    const added = (await db.query(`SELECT count(*)::int AS n FROM bullmq.event WHERE queue = 'cd-prompt' AND event = 'added'`)).rows[0].n as number;
    expect(added).toBe(4);
    await waitFor('counter on /metrics', async () => (await gauge(s, 'bullmq_jobs_added_total', { prefix: 'bullmq', queue: 'cd-prompt' })) === added);
    await s.close();
  });

  it("equals a full collection's every gauge after the sweep, hand edits and job.remove() included", async () => {
    const now = Date.now();
    const waits = pgs.bull.queue('cd-waits');
    await waits.add('old', {}, { timestamp: now - 120_000 });
    await waits.add('w', {});
    await waits.add('p', {}, { priority: 5 });
    await waits.add('later', {}, { delay: 3_600_000 });
    // Falls due during the test, with no event at that moment.
    await pgs.bull.queue('cd-soon').add('soon', {}, { delay: 1500 });
    const edited = pgs.bull.queue('cd-edited');
    await edited.add('e1', {});
    await edited.add('e2', {});
    const finished = pgs.bull.queue('cd-finished');
    for (let i = 0; i < 3; i += 1) await finished.add('f', { fail: i === 2 });
    const fw = pgs.bull.worker('cd-finished', async (j) => {
      if (j.data.fail) throw new Error('boom');
    });
    await waitFor('finished', async () => (await pgs.bull.countsOf('cd-finished')).failed === 1);
    await fw.close();
    const busy = pgs.bull.queue('cd-active');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    pgs.bull.worker('cd-active', async () => gate);
    await busy.add('long', {});
    await waitFor('busy active', async () => (await pgs.bull.countsOf('cd-active')).active === 1);

    const names = ['cd-waits', 'cd-soon', 'cd-edited', 'cd-finished', 'cd-active'];
    const s = await pgs.sidecar({ queues: names.join(','), collectInterval: '0.2', collectSweep: '2', collectSweepIdle: '2', pgOwnSchema: 'queuelens_sweep' });
    await s.start();
    for (const queue of names) await followed(s, queue, 1);
    await waitFor('soon overdue', async () => (await gauge(s, 'bullmq_queue_delayed_overdue_jobs', { prefix: 'bullmq', queue: 'cd-soon' })) === 1, 30_000);
    expect(await jobs(s, 'cd-finished', 'completed')).toBe(2);

    // Writes that publish no event: a pause and a deleted job by hand, and job.remove() of a finished job.
    const db = pgs.server.pool(1);
    await db.query(`INSERT INTO bullmq.meta (queue, field, value) VALUES ('cd-edited', 'paused', '1') ON CONFLICT (queue, field) DO UPDATE SET value = '1'`);
    await db.query(`DELETE FROM bullmq.job WHERE queue = 'cd-edited' AND name = 'e2'`);
    const done = await finished.getJobs(['completed']);
    const eventsBefore = (await db.query(`SELECT count(*)::int AS n FROM bullmq.event WHERE queue = 'cd-finished'`)).rows[0].n as number;
    await done[0]!.remove();
    // The ground truth of "no event": BullMQ wrote none for the removal.
    expect((await db.query(`SELECT count(*)::int AS n FROM bullmq.event WHERE queue = 'cd-finished'`)).rows[0].n).toBe(eventsBefore);
    await waitFor(
      'edits seen',
      async () => {
        const m = await s.scrape();
        return (
          m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bullmq', queue: 'cd-edited', state: 'waiting' })) === 1 &&
          m.get(seriesKey('bullmq_queue_paused', { prefix: 'bullmq', queue: 'cd-edited' })) === 1 &&
          m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bullmq', queue: 'cd-finished', state: 'completed' })) === 1
        );
      },
      30_000,
    );

    const kept = s.snapshot()!;
    const full = await pgs.sidecar({ queues: names.join(','), events: 'false', collectSweep: '0', pgOwnSchema: 'queuelens_full' });
    await full.refresh();
    const a = expectKeptEqualsFull(kept, full.snapshot()!);
    expect(a.get('cd-waits')!.oldestWaitingAgeSeconds).toBeGreaterThanOrEqual(120);
    expect(a.get('cd-active')!.oldestActiveAgeSeconds).toBeGreaterThan(0);
    release();
    await full.close();
    await s.close();
  }, 180_000);

  it('a replica renders the snapshot the leader persisted, without reading BullMQ’s tables; with the leader gone it collects', async () => {
    const q = pgs.bull.queue('cd-shared');
    await q.add('a', {});
    await q.add('b', {});
    const opts = { queues: 'cd-shared', collectInterval: '0.2', collectSweep: '60', pgOwnSchema: 'queuelens_shared' };
    const leader = await pgs.sidecar(opts);
    await leader.start();
    await followed(leader, 'cd-shared');
    const replica = await pgs.sidecar(opts);
    // Every client the replica's pool hands out (queries and transactions alike) from now on.
    const replicaClients = new WeakSet<object>();
    replica.backend.pool.on('acquire', (c) => replicaClients.add(c));
    await replica.start();
    await waitFor('replica renders', async () => (await jobs(replica, 'cd-shared', 'waiting')) === 2);
    expect(leader.backend.events!.isLeader).toBe(true);

    const rec = record();
    const seq = replica.snapshot()!.seq;
    for (let i = 0; i < 3; i += 1) await q.add('more', { i });
    const truth = (await pgs.bull.countsOf('cd-shared')).waiting;
    expect(truth).toBe(5);
    await waitFor('replica shows the change', async () => (await jobs(replica, 'cd-shared', 'waiting')) === truth);
    await waitFor('replica collections', () => replica.snapshot()!.seq >= seq + 3);
    const log = rec.stop();
    const fromReplica = log.filter((c) => replicaClients.has(c.client));
    expect(fromReplica.some((c) => c.text.includes('collection_snapshot'))).toBe(true);
    // Nothing of the replica's names BullMQ's schema (its discovery ran at start, before the recording).
    expect(fromReplica.filter((c) => c.text.includes('"bullmq".')).map((c) => c.text.slice(0, 80))).toEqual([]);
    // And the leader did read the queue (the control).
    expect(readsOf(log, 'cd-shared').filter((c) => !replicaClients.has(c.client)).length).toBeGreaterThan(0);

    // The leader leaves: the replica takes the lease over and collects by itself, exact.
    await leader.close();
    await q.add('after', {});
    await waitFor('replica exact alone', async () => (await jobs(replica, 'cd-shared', 'waiting')) === 6, 60_000);
    const db = pgs.server.pool(1);
    await waitFor(
      'new leader writes the snapshot',
      async () => (await db.query(`SELECT 1 FROM queuelens_shared.collection_snapshot WHERE source = 'bullmq'`)).rowCount === 1,
      60_000,
    );
    await replica.close();
  }, 180_000);
});
