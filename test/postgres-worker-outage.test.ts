// A worker on BullMQ's PostgreSQL backend through a database restart: /readyz's probe says not ready while the server is
// down and ready again once it is back, and the worker takes and finishes jobs again without being restarted.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { preparePostgres, type PostgresTarget } from '../src/jobs/postgres-store.js';
import { emailProcessor } from '../src/workers/email-processor.js';
import { waitFor } from './helpers/bullmq.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtp-sink.js';
import { WorkerHarness } from './helpers/workers.js';

let server: TestPostgres;
let sink: SmtpSink;
let h: WorkerHarness;

beforeAll(async () => {
  server = await startTestPostgres();
  const target: PostgresTarget = { databaseUrl: server.url, schema: 'bullmq', ownSchema: 'queuelens', migrate: true };
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
