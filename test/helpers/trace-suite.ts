// The trace-tree tests, run under both context managers (tracing.test.ts: AsyncLocalStorage; tracing-job-context.test.ts:
// the explicit job context of `queuelens worker`), and on BullMQ's PostgreSQL backend (postgres-tracing.test.ts): producer -> one consumer span per attempt -> SMTP/HTTP/export-chunk
// children, the retry chain, the export -> email chain, the dead-letter copy, log correlation, no stray root span, and
// no personal data or secret in any span.
import { exporter, childrenOf, parentId, spans, type Span } from './in-memory-spans.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { context, ROOT_CONTEXT, SpanKind, trace, TraceFlags } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeadLetterQueue } from '../../src/dead-letters/dead-letter-record.js';
import { preparePostgres } from '../../src/jobs/postgres-store.js';
import { emailProcessor } from '../../src/workers/email-processor.js';
import { exportProcessor } from '../../src/workers/export-processor.js';
import { webhookProcessor } from '../../src/workers/webhook-processor.js';
import { waitFor } from './bullmq.js';
import { startTestPostgres, type TestPostgres } from './postgres-server.js';
import { startTestRedis, type TestRedis } from './redis-server.js';
import { startSmtpSink, type SmtpSink } from './smtp-sink.js';
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver.js';
import { fastRetry, WorkerHarness } from './workers.js';

const SECRET = 'trace-test-secret';
// Slack/Discord/Teams-style: the webhook URL's path is itself a credential.
const PATH_TOKEN = 'T000-B000-path-token-XXXXXXXX';
let redis: TestRedis | undefined;
let pg: TestPostgres | undefined;
let sink: SmtpSink;
let rx: WebhookReceiver;
let h: WorkerHarness;
let dir: string;

export function defineTraceSuite(mode: 'job' | 'async', backend: 'redis' | 'postgres' = 'redis'): void {
  beforeAll(async () => {
    if (backend === 'postgres') {
      pg = await startTestPostgres();
      const target = { databaseUrl: pg.url, schema: 'bullmq', ownSchema: 'queuelens', migrate: true };
      await preparePostgres(target);
      h = WorkerHarness.postgres(target);
    } else {
      redis = await startTestRedis();
      h = new WorkerHarness(redis);
    }
    sink = await startSmtpSink();
    rx = await startWebhookReceiver(SECRET);
    dir = mkdtempSync(join(tmpdir(), 'queuelens-trace-'));
    const mail = emailProcessor({ smtpUrl: sink.url, from: 'x@queuelens.test' });
    h.onClose(mail.close);
    await h.start('email', mail.process);
    await h.start('webhook', webhookProcessor({ secret: SECRET, timeoutMs: 1000, allow: ['127.0.0.1'] }).process);
    await h.start('export', exportProcessor({ dir, producer: h.producer, chunkRows: 1000 }).process);
  });

  afterAll(async () => {
    await h?.close();
    await sink?.close();
    await rx?.close();
    await redis?.stop();
    await pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `fn` inside a root span standing in for the caller's request; returns the trace id. */
  async function traced(fn: () => Promise<unknown>): Promise<string> {
    return trace.getTracer('test').startActiveSpan('http-request', async (root) => {
      await fn();
      root.end();
      return root.spanContext().traceId;
    });
  }

  const inTrace = (traceId: string) => spans().filter((s) => s.spanContext().traceId === traceId);
  const one = (list: Span[], name: string): Span => {
    const found = list.filter((s) => s.name === name);
    expect(found, name).toHaveLength(1);
    return found[0]!;
  };
  function descendants(root: Span, all: Span[]): Span[] {
    const out: Span[] = [];
    for (const c of childrenOf(root, all)) out.push(c, ...descendants(c, all));
    return out;
  }
  const isRedis = (s: Span) => s.attributes['db.system.name'] === 'redis' || s.attributes['db.system'] === 'redis';

  function expectMessagingAttrs(s: Span, queue: string, op: 'send' | 'process', jobId: string): void {
    expect(s.attributes).toMatchObject({
      'messaging.system': 'bullmq',
      'messaging.destination.name': queue,
      'messaging.operation.type': op,
      'messaging.message.id': jobId,
      'bullmq.queue.name': queue,
    });
  }

  describe(`traces (${mode} context${backend === 'postgres' ? ', BullMQ on PostgreSQL' : ''})`, () => {
    it('email: request -> add -> process -> smtp send, with messaging attributes; BullMQ finishing the job adds no span', async () => {
      let jobId = '';
      const traceId = await traced(async () => {
        jobId = (await h.producer.enqueueEmail({ template: 'welcome', to: 'dave@example.com' })).id!;
      });
      await waitFor('process span', () => inTrace(traceId).some((s) => s.name === 'process email'));
      const all = inTrace(traceId);
      const root = one(all, 'http-request');
      const add = one(all, 'add email.welcome');
      expect(add.kind).toBe(SpanKind.PRODUCER);
      expect(parentId(add)).toBe(root.spanContext().spanId);
      expectMessagingAttrs(add, 'email', 'send', jobId);
      // The producer's Redis call comes after an `await` inside BullMQ: only AsyncLocalStorage carries the context there.
      // (On PostgreSQL no instrumentation records the SQL.)
      expect(childrenOf(add, all).some(isRedis)).toBe(mode === 'async' && backend === 'redis');
      const proc = one(all, 'process email');
      expect(proc.kind).toBe(SpanKind.CONSUMER);
      expect(parentId(proc)).toBe(add.spanContext().spanId);
      expectMessagingAttrs(proc, 'email', 'process', jobId);
      const smtp = one(childrenOf(proc, all), 'smtp send');
      expect(smtp.kind).toBe(SpanKind.CLIENT);
      expect(smtp.attributes).toMatchObject({ 'server.address': '127.0.0.1', 'server.port': sink.port, 'queuelens.email.template': 'welcome' });
      // The completion (BullMQ's `complete` operation, one moveToFinished script) is inside the consumer span's time;
      // a span of its own and a Redis span under it were two more spans per job saying the same thing.
      expect(descendants(proc, all).map((s) => s.name)).toEqual(['smtp send']);
    });

    it('webhook retry chain: one consumer span per attempt under the same producer, each with its HTTP call', async () => {
      rx.script({ status: 500 });
      let jobId = '';
      const traceId = await traced(async () => {
        jobId = (
          await h.producer.enqueueWebhook(
            { url: `${rx.url}/traced/${PATH_TOKEN}`, event: 'e', payload: 1, secret: 'per-job-secret-9' },
            fastRetry(3, 'retry-after'),
          )
        ).id!;
      });
      await waitFor('two attempts', () => inTrace(traceId).filter((s) => s.name === 'process webhook').length === 2);
      const all = inTrace(traceId);
      const add = one(all, 'add webhook.webhook');
      const attempts = childrenOf(add, all).filter((s) => s.name === 'process webhook');
      expect(attempts).toHaveLength(2);
      const calls = attempts.map((a) => one(childrenOf(a, all), 'POST'));
      expect(calls.map((c) => c.attributes['http.response.status_code']).sort()).toEqual([200, 500]);
      for (const c of calls) {
        expect(c.kind).toBe(SpanKind.CLIENT);
        expect(c.attributes).toMatchObject({
          'http.request.method': 'POST',
          'url.scheme': 'http',
          'server.address': '127.0.0.1',
          'server.port': Number(new URL(rx.url).port),
        });
      }
      expect(attempts.map((a) => a.attributes['messaging.message.id'])).toEqual([jobId, jobId]);
      // The receiver got the trace context of the HTTP span that called it.
      const got = rx.deliveries.filter((d) => d.path === `/traced/${PATH_TOKEN}`).map((d) => String(d.headers.traceparent));
      expect(got.sort()).toEqual(calls.map((c) => `00-${traceId}-${c.spanContext().spanId}-01`).sort());
    });

    it('export -> email chain stays in one trace, with a span per chunk', async () => {
      const traceId = await traced(() => h.producer.enqueueExport({ format: 'csv', rows: 2500, notify: 'erin@example.com' }));
      // The consumer span ends after its SMTP child, so wait for it rather than for the send.
      await waitFor('email processed in the same trace', () => inTrace(traceId).some((s) => s.name === 'process email'), 20_000);
      const all = inTrace(traceId);
      const addExport = one(all, 'add export.export');
      const procExport = one(childrenOf(addExport, all), 'process export');
      const kids = childrenOf(procExport, all);
      expect(kids.filter((s) => s.name === 'export chunk').map((s) => s.attributes['queuelens.export.rows'])).toEqual([1000, 1000, 500]);
      const addEmail = one(kids, 'add email.export-ready');
      const procEmail = one(childrenOf(addEmail, all), 'process email');
      one(childrenOf(procEmail, all), 'smtp send');
      const lines = h.logLines.map((l) => JSON.parse(l) as Record<string, string>).filter((l) => l.msg === 'export written' && l.trace_id === traceId);
      expect(lines).toHaveLength(1);
      expect(lines[0]!.span_id).toBe(procExport.spanContext().spanId);
    });

    it('a chain its producer did not sample records nothing, and its log lines still carry the trace id', async () => {
      // The caller's request was not sampled: with the default parent-based sampler nothing downstream may be.
      const traceId = randomBytes(16).toString('hex');
      const unsampled = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: randomBytes(8).toString('hex'), traceFlags: TraceFlags.NONE });
      const job = await context.with(unsampled, () => h.producer.enqueueExport({ format: 'csv', rows: 1500, notify: 'gus@example.com' }));
      expect(JSON.parse((job.opts as { telemetry: { metadata: string } }).telemetry.metadata).traceparent).toMatch(
        new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`),
      );
      await waitFor('export-ready email delivered', () => sink.mails.some((m) => m.envelopeTo.includes('gus@example.com')), 20_000);
      expect(spans().filter((s) => s.spanContext().traceId === traceId)).toEqual([]);
      const lines = h.logLines.map((l) => JSON.parse(l) as Record<string, string>).filter((l) => l.msg === 'export written' && l.jobId === job.id);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ trace_id: traceId, trace_flags: '00' });
    });

    it("the dead-letter copy is part of the failed job's trace, and a redrive links back to it", async () => {
      const traceId = await traced(() => h.producer.enqueueEmail({ template: 'welcome', to: 'reject-9@example.com' }));
      await waitFor('dlq add', () => inTrace(traceId).some((s) => s.name === 'add email-dlq.welcome'));
      const all = inTrace(traceId);
      const proc = one(all, 'process email');
      const dlqAdd = one(all, 'add email-dlq.welcome');
      expect(parentId(dlqAdd)).toBe(proc.spanContext().spanId);
      expect(one(childrenOf(proc, all), 'smtp send').status.code).toBe(2);

      // A redrive starts a new trace whose redrive span links back to the dead-lettered original.
      const w = (h as unknown as { workers: Array<{ deadLetters: DeadLetterQueue }> }).workers[0]!;
      // On PostgreSQL BullMQ's add span ends before the copy's transaction commits: wait for the dead letter itself.
      const dl = await waitFor('the dead letter', async () => (await w.deadLetters.list()).find((j) => j.data.traceMetadata?.includes(traceId)));
      await w.deadLetters.redrive(h.producer.queue('email'), dl);
      const redrive = spans().find((s) => s.name === 'redrive email')!;
      expect(redrive.kind).toBe(SpanKind.PRODUCER);
      expect(redrive.spanContext().traceId).not.toBe(traceId);
      expect(redrive.links.map((l) => l.context.traceId)).toEqual([traceId]);
      expect(childrenOf(redrive).map((s) => s.name)).toContain('add email.welcome');
    });

    it('every span belongs to a trace the test started (or a redrive): no work of a job becomes a root', () => {
      const roots = spans().filter((s) => parentId(s) === undefined);
      expect(roots.length).toBeGreaterThan(3);
      expect(new Set(roots.map((s) => s.name))).toEqual(new Set(['http-request', 'redrive email']));
    });

    it('no span carries an email address or a webhook secret', () => {
      const text = JSON.stringify(exporter.getFinishedSpans().map((s) => ({ a: s.attributes, e: s.events, n: s.name, st: s.status })));
      expect(text.length).toBeGreaterThan(1000);
      expect(text).not.toMatch(/(dave|erin|reject-9|gus)@example\.com/);
      expect(text).not.toContain('per-job-secret-9');
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(PATH_TOKEN);
    });
  });
}
