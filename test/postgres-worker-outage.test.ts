// A worker on BullMQ's PostgreSQL backend through a database restart: /readyz's probe says not ready while the server is
// down and ready again once it is back, and the worker takes and finishes jobs again without being restarted.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { postgresQueue, postgresWorker, preparePostgres, type PostgresTarget } from '../src/jobs/postgres-store.js';
import { emailProcessor } from '../src/workers/email-processor.js';
import { waitFor } from './helpers/bullmq.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtp-sink.js';
import { WorkerHarness } from './helpers/workers.js';

let server: TestPostgres;
let sink: SmtpSink;
let h: WorkerHarness;
let target: PostgresTarget;

beforeAll(async () => {
  server = await startTestPostgres();
  target = { databaseUrl: server.url, schema: 'bullmq', ownSchema: 'queuelens', migrate: true };
  await preparePostgres(target);
  sink = await startSmtpSink();
  h = WorkerHarness.postgres(target);
});

afterAll(async () => {
  await h?.close();
  await sink?.close();
  await server?.stop();
});

it('is not ready while PostgreSQL is down, ready again when it is back, and processes jobs again by itself', async () => {
  const mail = emailProcessor({ smtpUrl: sink.url, from: 'x@queuelens.test' });
  h.onClose(mail.close);
  const w = await h.start('email', mail.process, { concurrency: 1 });
  expect(await w.redisAnswers(5_000)).toBe(true);
  await h.producer.enqueueEmail({ template: 'welcome', to: 'before@example.com' });
  await sink.waitFor(1);

  await server.shutdown();
  expect(await w.redisAnswers(2_000)).toBe(false);
  expect(w.health()).toMatchObject({ queue: 'email', redis: false });
  await server.restart();
  await waitFor('ready again', () => w.redisAnswers(2_000), 60_000);
  expect(w.health()).toMatchObject({ queue: 'email', running: true, redis: true });

  await h.producer.enqueueEmail({ template: 'welcome', to: 'after@example.com' });
  await waitFor('the mail after the restart delivered', () => sink.mails.some((m) => m.envelopeTo.includes('after@example.com')), 60_000);
}, 180_000);

it('a final failure left uncopied is copied once PostgreSQL is back from an outage, not at the next periodic sweep', async () => {
  const w = (h as unknown as { workers: Array<import('../src/workers/create-worker.js').ManagedWorker> }).workers[0]!;
  // The state a lost reply leaves: failed for good, no dead letter (a plain worker fails it while ours is paused).
  await w.worker.pause();
  const raw = postgresQueue(target, 'email', { skipMetasUpdate: true });
  const orphan = await raw.add('welcome', { template: 'welcome', to: 'orphan@example.com' }, { attempts: 1 });
  const plain = postgresWorker(target, 'email', async () => {
    throw new Error('failed while the reply was lost');
  });
  await waitFor('orphan failed', async () => (await raw.getJobState(orphan.id!)) === 'failed');
  await plain.close();
  await raw.close();
  w.worker.resume();
  const copies = async () => (await h.dlqJobs('email')).filter((j) => j.data.source.jobId === orphan.id).length;
  expect(await copies()).toBe(0);

  await server.shutdown();
  // The worker notices by itself (its connection fails), with no /readyz prober asking.
  await waitFor('the worker to notice the outage', () => w.health().redis === false, 60_000);
  await server.restart();
  // The periodic sweep runs every 5 minutes: within this wait only the sweep after reconnecting can copy it.
  await waitFor('the orphan dead-lettered', async () => (await copies()) === 1, 60_000);
  expect(w.health().redis).toBe(true);
}, 180_000);
