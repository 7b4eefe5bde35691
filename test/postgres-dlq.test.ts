// Dead letters on BullMQ's PostgreSQL backend, mirroring dlq.test.ts: what a dead letter carries, a final failure
// copied exactly once (copy again, sweep), the crash-recovery sweep, redrive exactly once (also under concurrent
// redrives and a redrive killed mid-way), held secrets, purge, and the `queuelens dlq` commands. Ground truth is
// what BullMQ's tables and queuelens's own tables hold, read with SQL.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOT_A_DEAD_LETTER, redriveJobId, type DeadLetterRecord } from '../src/dead-letters/dead-letter-record.js';
import { PostgresDeadLetters } from '../src/dead-letters/postgres-dead-letters.js';
import { postgresQueue, postgresWorker, preparePostgres, type PostgresTarget } from '../src/jobs/postgres-store.js';
import { verifyWebhook } from '../src/workers/webhook-signature.js';
import { webhookProcessor } from '../src/workers/webhook-processor.js';
import type { Job } from 'bullmq';
import { waitFor } from './helpers/bullmq.js';
import { bulkWebhookDeadLetters } from './helpers/dead-letter-fixtures.js';
import { runCli } from './helpers/cli.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';
import { fastRetry, WorkerHarness } from './helpers/workers.js';

const SECRET = 'dlq-test-secret';
const JOB_SECRET = 'job-secret-xyz';
let server: TestPostgres;
let db: pg.Pool;
let target: PostgresTarget;
let rx: WebhookReceiver;
let h: WorkerHarness;

beforeAll(async () => {
  server = await startTestPostgres();
  db = server.pool(4);
  target = { databaseUrl: server.url, schema: 'bullmq', ownSchema: 'queuelens', migrate: true };
  await preparePostgres(target);
  rx = await startWebhookReceiver(SECRET);
  h = WorkerHarness.postgres(target);
  await h.start('webhook', webhookProcessor({ secret: SECRET, timeoutMs: 1000, allow: ['127.0.0.1'], namespace: 'bullmq' }).process, { concurrency: 1 });
});

afterAll(async () => {
  await h?.close();
  await rx?.close();
  await server?.stop();
});

const cli = (...args: string[]) => runCli([...args, '--backend', 'postgres', '--database-url', server.url, '--log-level', 'silent']);
const workerDeadLetters = () => (h as unknown as { workers: Array<{ deadLetters: PostgresDeadLetters }> }).workers[0]!.deadLetters;

/** Dead letters of a source job in BullMQ's `job` table, counted with SQL. */
async function copiesOf(jobId: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>("SELECT count(*) AS n FROM bullmq.job WHERE queue = 'webhook-dlq' AND data -> 'source' ->> 'jobId' = $1", [
    jobId,
  ]);
  return Number(rows[0]!.n);
}
async function jobsWithId(queue: string, id: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM bullmq.job WHERE queue = $1 AND id = $2', [queue, id]);
  return Number(rows[0]!.n);
}

async function deadLetter(path: string, attempts = 2) {
  rx.script(...Array.from({ length: attempts }, () => ({ status: 500 })));
  const job = await h.producer.enqueueWebhook(
    { url: `${rx.url}${path}`, event: 'dlq.test', payload: { path }, secret: JOB_SECRET },
    fastRetry(attempts, 'retry-after'),
  );
  const dl = await waitFor('dead letter', async () => (await h.dlqJobs('webhook')).find((j) => j.data.source.jobId === job.id));
  return { job, dl };
}

describe('dead letters on PostgreSQL', () => {
  it('carry name, data, options, reason, stack, attempts, failure times; the secret is held in queuelens’s schema; the original stays failed', async () => {
    const t0 = Date.now();
    const { job, dl } = await deadLetter('/carry');
    expect(dl.name).toBe('webhook');
    expect(dl.data.source).toEqual({ prefix: 'bullmq', queue: 'webhook', jobId: job.id, name: 'webhook', timestamp: job.timestamp });
    expect(dl.data.data).toEqual({ url: `${rx.url}/carry`, event: 'dlq.test', payload: { path: '/carry' } });
    expect(dl.data.heldSecrets).toEqual(['secret']);
    const row = await db.query<{ t: string }>("SELECT row_to_json(j)::text AS t FROM bullmq.job j WHERE queue = 'webhook-dlq' AND id = $1", [dl.id]);
    expect(row.rows[0]!.t).not.toContain(JOB_SECRET);
    const held = await db.query('SELECT secrets FROM queuelens.dead_letter_secret WHERE bull_schema = $1 AND queue = $2 AND dlq_job_id = $3', [
      'bullmq',
      'webhook',
      dl.id,
    ]);
    expect(held.rows).toEqual([{ secrets: { secret: JOB_SECRET } }]);
    expect(dl.data.opts).toMatchObject({ attempts: 2, backoff: { type: 'retry-after', delay: 20 } });
    expect(dl.data.failedReason).toBe('webhook receiver answered 500');
    expect(dl.data.stacktrace).toHaveLength(2);
    expect(dl.data.attemptsMade).toBe(2);
    expect(dl.data.firstFailedAt).toBeGreaterThanOrEqual(t0);
    expect(dl.data.lastFailedAt).toBeGreaterThan(dl.data.firstFailedAt);
    expect(dl.data.deadLetteredAt).toBeGreaterThanOrEqual(dl.data.lastFailedAt);
    expect(await h.queue('webhook').getJobState(job.id!)).toBe('failed');
    // The webhook's delivery id names the schema where Redis names the prefix.
    expect(rx.deliveries.filter((d) => d.path === '/carry').map((d) => d.headers['x-queuelens-delivery'])).toEqual(
      [1, 2].map(() => `bullmq:webhook:${job.id}:${job.timestamp}`),
    );
  });

  it('a final failure is copied once: copying it again and sweeping add nothing', async () => {
    const { job } = await deadLetter('/twice');
    expect(await copiesOf(job.id!)).toBe(1);
    const failed = (await h.queue('webhook').getJob(job.id!))!;
    await Promise.all([workerDeadLetters().copy(failed), workerDeadLetters().copy(failed)]);
    expect(await workerDeadLetters().sweep()).toBe(0);
    expect(await copiesOf(job.id!)).toBe(1);
  });

  it('sweeps failures a crashed worker never copied, exactly once', async () => {
    // A plain BullMQ worker fails the job for good and copies nothing: the state a crash between BullMQ's
    // move to failed and queuelens's copy leaves behind.
    await h.close();
    h = WorkerHarness.postgres(target);
    const raw = postgresQueue(target, 'webhook', { skipMetasUpdate: true });
    const orphan = await raw.add('webhook', { url: `${rx.url}/orphan`, event: 'e', payload: 1 }, { attempts: 1 });
    const crashing = postgresWorker(target, 'webhook', async () => {
      throw new Error('worker crashed before copying');
    });
    await waitFor('orphan failed', async () => (await raw.getJobState(orphan.id!)) === 'failed');
    await crashing.close();
    expect(await copiesOf(orphan.id!)).toBe(0);
    const w = await h.start('webhook', webhookProcessor({ secret: SECRET, timeoutMs: 1000, allow: ['127.0.0.1'], namespace: 'bullmq' }).process, {
      concurrency: 1,
    });
    expect(await copiesOf(orphan.id!)).toBe(1);
    expect(await w.deadLetters.sweep()).toBe(0);
    expect(await copiesOf(orphan.id!)).toBe(1);
    await raw.close();
  });

  it('redrives to the original queue with fresh attempts and a link, once; the dead letter and its secret are gone', async () => {
    const { job, dl } = await deadLetter('/redrive');
    const dry = await cli('dlq', 'redrive', 'webhook', '--id', String(dl.id), '--dry-run');
    expect(dry.output).toContain('would-redrive');
    expect(await jobsWithId('webhook-dlq', String(dl.id))).toBe(1);

    const res = await cli('dlq', 'redrive', 'webhook', '--id', String(dl.id));
    expect(res.code).toBe(0);
    expect(res.output).toContain('"redriven":1');
    const newId = redriveJobId(String(dl.id));
    await waitFor('redriven job completed', async () => (await h.queue('webhook').getJobState(newId)) === 'completed');
    const redriven = (await h.queue('webhook').getJob(newId))!;
    expect(redriven.attemptsMade).toBe(1);
    expect(redriven.opts.attempts).toBe(2);
    expect(redriven.data).toMatchObject({
      url: `${rx.url}/redrive`,
      redrivenFrom: { queue: 'webhook-dlq', dlqJobId: String(dl.id), originalJobId: job.id, originalTimestamp: job.timestamp },
    });
    const deliveries = rx.deliveries.filter((d) => d.path === '/redrive');
    expect(deliveries.map((d) => d.answered)).toEqual([500, 500, 200]);
    for (const d of deliveries) expect(verifyWebhook(JOB_SECRET, d.body, String(d.headers['x-queuelens-signature']))).toBe(true);
    expect(new Set(deliveries.map((d) => d.headers['x-queuelens-delivery']))).toEqual(new Set([`bullmq:webhook:${job.id}:${job.timestamp}`]));
    expect(await jobsWithId('webhook-dlq', String(dl.id))).toBe(0);
    expect((await db.query('SELECT 1 FROM queuelens.dead_letter_secret WHERE dlq_job_id = $1', [dl.id])).rowCount).toBe(0);

    const again = await cli('dlq', 'redrive', 'webhook', '--id', String(dl.id));
    expect(again.output).toContain('not-found');
    expect(again.code).toBe(1);
    expect(await jobsWithId('webhook', newId)).toBe(1);
    expect(rx.deliveries.filter((d) => d.path === '/redrive')).toHaveLength(3);
  });

  it('concurrent redrives of one dead letter: one redrives, the others find nothing; one job added, one delivery', async () => {
    const { dl } = await deadLetter('/race');
    // Held by another session, the dead letter's row makes every redrive wait at its removal, then all go at once.
    const holder = await db.connect();
    await holder.query('BEGIN');
    await holder.query("SELECT 1 FROM bullmq.job WHERE queue = 'webhook-dlq' AND id = $1 FOR UPDATE", [dl.id]);
    const racers = Array.from({ length: 5 }, () => new PostgresDeadLetters({ target, queue: 'webhook' }));
    const into = h.producer.queue('webhook');
    const outcomes = racers.map((r) => r.redrive(into, dl));
    await waitFor('five redrives waiting on the dead letter', async () => {
      const { rows } = await db.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'queuelens dead-letters' AND wait_event_type = 'Lock'",
      );
      return Number(rows[0]!.n) === 5;
    });
    await holder.query('COMMIT');
    holder.release();
    const statuses = (await Promise.all(outcomes)).map((o) => o.status).sort();
    expect(statuses).toEqual(['not-found', 'not-found', 'not-found', 'not-found', 'redriven']);
    await Promise.all(racers.map((r) => r.close()));
    const newId = redriveJobId(String(dl.id));
    await waitFor('redriven job completed', async () => (await h.queue('webhook').getJobState(newId)) === 'completed');
    expect(await jobsWithId('webhook', newId)).toBe(1);
    expect(await jobsWithId('webhook-dlq', String(dl.id))).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(rx.deliveries.filter((d) => d.path === '/race').map((d) => d.answered)).toEqual([500, 500, 200]);
  });

  it('a redrive whose connection dies mid-way adds nothing and keeps the dead letter; the next one redrives it once', async () => {
    const { dl } = await deadLetter('/killed');
    const holder = await db.connect();
    await holder.query('BEGIN');
    await holder.query("SELECT 1 FROM bullmq.job WHERE queue = 'webhook-dlq' AND id = $1 FOR UPDATE", [dl.id]);
    const doomed = new PostgresDeadLetters({ target, queue: 'webhook' });
    const outcome = doomed.redrive(h.producer.queue('webhook'), dl).then(
      () => 'finished',
      () => 'failed',
    );
    const pid = await waitFor('the redrive waiting on the dead letter', async () => {
      const { rows } = await db.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'queuelens dead-letters' AND wait_event_type = 'Lock'",
      );
      return rows[0]?.pid;
    });
    await db.query('SELECT pg_terminate_backend($1)', [pid]);
    expect(await outcome).toBe('failed');
    await holder.query('COMMIT');
    holder.release();
    await doomed.close();
    const newId = redriveJobId(String(dl.id));
    expect(await jobsWithId('webhook-dlq', String(dl.id))).toBe(1);
    expect(await jobsWithId('webhook', newId)).toBe(0);
    expect((await db.query('SELECT 1 FROM queuelens.dead_letter_secret WHERE dlq_job_id = $1', [dl.id])).rowCount).toBe(1);

    expect((await workerDeadLetters().redrive(h.producer.queue('webhook'), dl)).status).toBe('redriven');
    await waitFor('redriven job completed', async () => (await h.queue('webhook').getJobState(newId)) === 'completed');
    expect(rx.deliveries.filter((d) => d.path === '/killed').map((d) => d.answered)).toEqual([500, 500, 200]);
  });

  it('refuses to redrive a dead letter whose held secret is gone, rather than sign with the wrong key', async () => {
    const { dl } = await deadLetter('/no-secret');
    await db.query('DELETE FROM queuelens.dead_letter_secret WHERE dlq_job_id = $1', [dl.id]);
    const res = await cli('dlq', 'redrive', 'webhook', '--id', String(dl.id));
    expect(res.output).toContain(`${dl.id}\tinvalid\tits secret is missing`);
    expect(await jobsWithId('webhook-dlq', String(dl.id))).toBe(1);
    expect(await jobsWithId('webhook', redriveJobId(String(dl.id)))).toBe(0);
  });

  it('a purged dead letter stays purged while its failed job is kept; the marker goes with the failed job', async () => {
    const job = await h.producer.enqueueWebhook({ url: `${rx.url}/purged?status=500`, event: 'dlq.test', payload: 1 }, fastRetry(2, 'retry-after'));
    const dl = await waitFor('dead letter', async () => (await h.dlqJobs('webhook')).find((j) => j.data.source.jobId === job.id));
    expect((await cli('dlq', 'purge', 'webhook', '--id', String(dl.id))).output).toContain('purged 1');
    expect(await copiesOf(job.id!)).toBe(0);
    const marker = () => db.query('SELECT 1 FROM queuelens.dead_letter_marker WHERE queue = $1 AND job_id = $2', ['webhook', job.id]);
    await workerDeadLetters().sweep();
    await workerDeadLetters().sweep();
    expect(await copiesOf(job.id!)).toBe(0);
    expect((await marker()).rowCount).toBe(1);
    await h.queue('webhook').remove(job.id!);
    await workerDeadLetters().sweep();
    expect((await marker()).rowCount).toBe(0);
    expect(await copiesOf(job.id!)).toBe(0);
  });

  it('lists and shows dead letters with secrets and addresses masked; --since counts back from the database clock', async () => {
    const { dl } = await deadLetter('/show');
    const list = await cli('dlq', 'list', 'webhook', '--since', '1h');
    expect(list.code).toBe(0);
    expect(list.output).toMatch(/^\d+ dead-lettered in webhook-dlq/);
    expect(list.output).toContain(String(dl.id));
    const show = await cli('dlq', 'show', 'webhook', '--id', String(dl.id));
    expect(show.code).toBe(0);
    const shown = JSON.parse(show.output) as { data: { secret?: string }; heldSecrets: string[] };
    expect(shown.data.secret).toBeUndefined();
    expect(shown.heldSecrets).toEqual(['secret']);
    expect(show.output).not.toContain(JOB_SECRET);
  });

  it('purges with a selection only, supports dry runs, and refuses a DLQ that is not in the schema', async () => {
    const none = await cli('dlq', 'purge', 'webhook');
    expect(none.code).toBe(2);
    const total = await h.queue('webhook-dlq').getWaitingCount();
    expect(total).toBeGreaterThan(0);
    expect((await cli('dlq', 'purge', 'webhook', '--all', '--dry-run')).output).toContain(`would purge ${total}`);
    expect(await h.queue('webhook-dlq').getWaitingCount()).toBe(total);
    expect((await cli('dlq', 'purge', 'webhook', '--all')).output).toContain(`purged ${total}`);
    expect(await h.queue('webhook-dlq').getWaitingCount()).toBe(0);
    expect((await db.query("SELECT 1 FROM queuelens.dead_letter_secret WHERE queue = 'webhook'")).rowCount).toBe(0);
    const typo = await cli('dlq', 'redrive', 'webhok', '--all');
    expect(typo.code).toBe(1);
    expect(typo.output).toContain('no dead-letter queue webhok-dlq in schema "bullmq"');
    // Nothing was written for the typo: no meta, no job.
    expect((await db.query("SELECT 1 FROM bullmq.meta WHERE queue = 'webhok-dlq'")).rowCount).toBe(0);
  });
});

describe('dead letters on PostgreSQL: job ids', () => {
  it('a dead letter redriven and dead-lettered again is a new dead letter, and redrives again once', async () => {
    const job = await h.producer.enqueueWebhook({ url: `${rx.url}/again?status=500`, event: 'dlq.test', payload: 2 }, fastRetry(1, 'retry-after'));
    const first = await waitFor('dead letter', async () => (await h.dlqJobs('webhook')).find((j) => j.data.source.jobId === job.id));
    expect((await workerDeadLetters().redrive(h.producer.queue('webhook'), first)).status).toBe('redriven');
    const redrivenId = redriveJobId(String(first.id));
    const second = (await waitFor('second dead letter', async () =>
      (await h.dlqJobs('webhook')).find((j) => j.data.source.jobId === redrivenId),
    )) as Job<DeadLetterRecord>;
    expect((second.data.data as { redrivenFrom: { originalJobId: string } }).redrivenFrom.originalJobId).toBe(job.id);
    expect((await workerDeadLetters().redrive(h.producer.queue('webhook'), second)).status).toBe('redriven');
    expect(await jobsWithId('webhook', redriveJobId(String(second.id)))).toBe(1);
    // It fails again (the URL always answers 500): a third dead letter, and only one.
    await waitFor('third dead letter', async () => (await copiesOf(redriveJobId(String(second.id)))) === 1);
  });

  it('redrives a large selection in one command with a progress bar', async () => {
    const dlq = postgresQueue(target, 'webhook-dlq', { skipMetasUpdate: true });
    await dlq.addBulk(bulkWebhookDeadLetters('bullmq', `${rx.url}/bulk`, 150));
    await dlq.close();
    const all = await h.queue('webhook-dlq').getWaitingCount();
    expect(all).toBeGreaterThanOrEqual(150);
    const res = await cli('dlq', 'redrive', 'webhook', '--all');
    expect(res.code).toBe(0);
    expect(res.output).toContain(`"redriven":${all}`);
    expect(res.output).toContain('redrive [');
    await waitFor('150 bulk deliveries', () => rx.deliveries.filter((d) => d.path === '/bulk').length === 150, 60_000);
    const { rows } = await db.query<{ n: string }>("SELECT count(*) AS n FROM bullmq.job WHERE queue = 'webhook' AND id LIKE 'redrive-bulk-%'");
    expect(Number(rows[0]!.n)).toBe(150);
  });

  it('a job in the DLQ that queuelens did not write is listed, and a redrive refuses it without adding or removing anything', async () => {
    const dlq = postgresQueue(target, 'webhook-dlq', { skipMetasUpdate: true });
    await dlq.add('foreign', { hello: 'world' }, { jobId: 'foreign-1' });
    await dlq.close();
    const list = await cli('dlq', 'list', 'webhook');
    expect(list.code).toBe(0);
    expect(list.output).toContain(`foreign-1\tforeign\t${NOT_A_DEAD_LETTER}`);
    const res = await cli('dlq', 'redrive', 'webhook', '--id', 'foreign-1');
    expect(res.code).toBe(1);
    expect(res.output).toContain(`foreign-1\tinvalid\t${NOT_A_DEAD_LETTER}`);
    expect(await jobsWithId('webhook-dlq', 'foreign-1')).toBe(1);
    expect(await jobsWithId('webhook', redriveJobId('foreign-1'))).toBe(0);
  });
});
