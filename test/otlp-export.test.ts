// Spans leave real processes over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (register module loaded
// with --import), and nothing is traced when it is not.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tracingEnv } from '../src/config/tracing-config.js';
import { waitFor } from './helpers/bullmq.js';
import { CLI } from './helpers/cli.js';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtp-sink.js';

const REGISTER = fileURLToPath(new URL('../dist/tracing/register.js', import.meta.url));

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
}

let redis: TestRedis;
let sink: SmtpSink;
let receiver: Server;
let endpoint: string;
const received: Array<{ service: string; spans: OtlpSpan[] }> = [];
/** Content type of every export request, in arrival order. */
const contentTypes: string[] = [];
/** Every JSON export body as received, resource included. */
const rawBodies: string[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  sink = await startSmtpSink();
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') contentTypes.push(String(req.headers['content-type']));
      if (req.url === '/v1/traces' && String(req.headers['content-type']).startsWith('application/json')) {
        rawBodies.push(Buffer.concat(chunks).toString());
        const body = JSON.parse(Buffer.concat(chunks).toString()) as {
          resourceSpans: Array<{ resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
        };
        for (const rs of body.resourceSpans) {
          const service = String(rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue);
          received.push({ service, spans: rs.scopeSpans.flatMap((s) => s.spans) });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
});

afterAll(async () => {
  await sink?.close();
  await redis?.stop();
  await new Promise((r) => receiver?.close(r));
});

/**
 * `redisUrl` '' leaves REDIS_URL unset. `plain`: `node dist/cli/index.js …`, as `npx queuelens …` runs it; else with
 * `--import register.js` (a user's own program).
 */
function run(args: string[], env: Record<string, string>, redisUrl = redis.url, plain = false) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_') && !k.startsWith('QUEUELENS_')));
  const proc = spawn(process.execPath, [...(plain ? [] : ['--import', REGISTER]), CLI, ...args], {
    env: { ...clean, ...(redisUrl ? { REDIS_URL: redisUrl } : {}), LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, output: () => out, exited };
}

const allSpans = () => received.flatMap((r) => r.spans.map((s) => ({ ...s, service: r.service })));

describe('OTLP/HTTP export', () => {
  it('decides from the standard variables whether to export', () => {
    expect(tracingEnv({}).exportEnabled).toBe(false);
    expect(tracingEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).exportEnabled).toBe(true);
    const cli = (...args: string[]) => ['node', 'dist/cli/index.js', ...args];
    expect(tracingEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces', OTEL_SERVICE_NAME: 'api' }, cli('enqueue', 'email'))).toEqual({
      exportEnabled: true,
      serviceName: 'api',
      contextManager: 'async',
      tracesProtocol: 'http/json',
      endpoint: { variable: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', url: new URL('http://c:4318/v1/traces') },
    });
    expect(tracingEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }).exportEnabled).toBe(false);
  });

  it('propagates the job context explicitly in workers and through AsyncLocalStorage elsewhere, unless told otherwise', () => {
    const cli = (...args: string[]) => ['node', 'dist/cli/index.js', ...args];
    expect(tracingEnv({}, cli('worker', 'email')).contextManager).toBe('job');
    expect(tracingEnv({}, cli('sidecar')).contextManager).toBe('async');
    expect(tracingEnv({ QUEUELENS_TRACE_CONTEXT: 'async' }, cli('worker', 'all')).contextManager).toBe('async');
    expect(tracingEnv({ QUEUELENS_TRACE_CONTEXT: 'job' }, cli('loadgen')).contextManager).toBe('job');
    expect(() => tracingEnv({ QUEUELENS_TRACE_CONTEXT: 'als' }, cli('worker'))).toThrow(/QUEUELENS_TRACE_CONTEXT must be "job" or "async" \(got "als"\)/);
  });

  it('exports JSON unless a protocol is set, and refuses one the SDK does not know', () => {
    expect(tracingEnv({}).tracesProtocol).toBe('http/json');
    expect(tracingEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }).tracesProtocol).toBe('http/protobuf');
    expect(tracingEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }).tracesProtocol).toBe('grpc');
    expect(tracingEnv({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: ' ', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }).tracesProtocol).toBe('http/protobuf');
    expect(() => tracingEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/xml' })).toThrow(
      'OTEL_EXPORTER_OTLP_PROTOCOL must be one of http/json, http/protobuf, grpc (got "http/xml"); unset it for http/json',
    );
  });

  it('sends producer and consumer spans of one trace from two processes over the wire', async () => {
    // No protocol set: queuelens's default, JSON, is what arrives.
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '100' };
    const typesBefore = contentTypes.length;
    const worker = run(['worker', 'email'], { ...otel, OTEL_SERVICE_NAME: 'mail-worker', SMTP_URL: sink.url, QUEUELENS_SHUTDOWN_TIMEOUT: '10' });
    await waitFor('worker started', () => worker.output().includes('workers started'), 15_000);
    const enqueue = run(['enqueue', 'email', '--data', '{"template":"welcome","to":"frank@example.com"}'], { ...otel, OTEL_SERVICE_NAME: 'api' });
    expect(await enqueue.exited).toBe(0);
    const { id } = JSON.parse(enqueue.output().trim().split('\n').pop()!) as { id: string };
    await sink.waitFor(1);
    await waitFor('smtp span received', () => allSpans().some((s) => s.name === 'smtp send'), 15_000);
    worker.proc.kill('SIGTERM');
    expect(await worker.exited).toBe(0);

    const spans = allSpans();
    const add = spans.find((s) => s.name === 'add email.welcome')!;
    expect(add.service).toBe('api');
    const attr = (s: OtlpSpan, k: string) => s.attributes.find((a) => a.key === k)?.value.stringValue;
    expect(attr(add, 'messaging.system')).toBe('bullmq');
    expect(attr(add, 'messaging.message.id')).toBe(id);
    const proc = spans.find((s) => s.name === 'process email' && s.traceId === add.traceId)!;
    expect(proc.service).toBe('mail-worker');
    expect(proc.parentSpanId).toBe(add.spanId);
    const smtp = spans.find((s) => s.name === 'smtp send')!;
    expect(smtp.parentSpanId).toBe(proc.spanId);
    expect(spans.some((s) => s.traceId === add.traceId && s.attributes.some((a) => a.key === 'db.system.name' || a.key === 'db.system'))).toBe(true);
    // The worker passes the job's context on explicitly (no AsyncLocalStorage): exactly its two spans, no stray root.
    expect(
      spans
        .filter((s) => s.service === 'mail-worker')
        .map((s) => s.name)
        .sort(),
    ).toEqual(['process email', 'smtp send']);
    expect(JSON.stringify(received)).not.toContain('frank@example.com');
    const types = contentTypes.slice(typesBefore);
    expect(types.length).toBeGreaterThanOrEqual(2);
    expect(types.every((t) => t.startsWith('application/json'))).toBe(true);
  });

  it('keeps secrets given as flags out of every exported resource and span', async () => {
    const password = 'redis-pass-7f3a9c21';
    const webhookSecret = 'webhook-secret-d41e8b07';
    const from = 'sender-b9c2@secret-domain.example';
    const locked = await startTestRedis({ password });
    try {
      const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_SERVICE_NAME: 'flags-worker' };
      const bodiesBefore = rawBodies.length;
      // Everything secret on the command line, nothing in the environment (REDIS_URL unset: the flag is the only way in).
      const worker = run(
        ['worker', 'email,webhook', '--redis-url', locked.url, '--smtp-url', sink.url, '--smtp-from', from, '--webhook-secret', webhookSecret],
        otel,
        '',
      );
      await waitFor('worker started', () => worker.output().includes('workers started'), 15_000);
      const enqueue = run(
        ['enqueue', 'email', '--redis-url', locked.url, '--data', '{"template":"welcome","to":"flag-user@example.com"}'],
        { ...otel, OTEL_SERVICE_NAME: 'flags-api' },
        '',
      );
      expect(await enqueue.exited).toBe(0);
      await waitFor('worker spans received', () => allSpans().some((s) => s.service === 'flags-worker' && s.name === 'smtp send'), 15_000);
      worker.proc.kill('SIGTERM');
      expect(await worker.exited).toBe(0);

      const bodies = rawBodies.slice(bodiesBefore);
      const resources = bodies.flatMap((b) =>
        (JSON.parse(b) as { resourceSpans: Array<{ resource: { attributes: OtlpSpan['attributes'] } }> }).resourceSpans.map((r) => r.resource.attributes),
      );
      const services = new Set(resources.map((attrs) => attrs.find((a) => a.key === 'service.name')?.value.stringValue));
      expect(services).toEqual(new Set(['flags-worker', 'flags-api']));
      for (const attrs of resources) {
        const keys = attrs.map((a) => a.key);
        // The process detector still runs (pid, runtime), without the command line.
        expect(keys).toContain('process.pid');
        expect(keys).not.toContain('process.command_args');
        expect(keys).not.toContain('process.command_line');
        expect(keys).not.toContain('process.owner');
      }
      const all = bodies.join('\n');
      for (const secret of [password, encodeURIComponent(password), webhookSecret, from, 'flag-user@example.com']) expect(all).not.toContain(secret);
    } finally {
      await locked.stop();
    }
  });

  it('honours OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf', async () => {
    const typesBefore = contentTypes.length;
    const enqueue = run(['enqueue', 'email', '--data', '{"template":"welcome","to":"hank@example.com"}'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_SERVICE_NAME: 'api',
    });
    expect(await enqueue.exited).toBe(0);
    // The CLI flushes its spans before it exits.
    const types = contentTypes.slice(typesBefore);
    expect(types.length).toBeGreaterThanOrEqual(1);
    expect(types.every((t) => t === 'application/x-protobuf')).toBe(true);
  });

  it('refuses an unknown QUEUELENS_TRACE_CONTEXT or OTLP protocol before starting, with exit code 2', async () => {
    const worker = run(['worker', 'email'], { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, QUEUELENS_TRACE_CONTEXT: 'zone' });
    expect(await worker.exited).toBe(2);
    expect(worker.output()).toContain('QUEUELENS_TRACE_CONTEXT must be "job" or "async" (got "zone")');
    const waiting = () => redis.client().llen('bull:email:wait');
    const before = await waiting();
    const enqueue = run(['enqueue', 'email', '--data', '{"template":"welcome","to":"ivy@example.com"}'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'json',
    });
    expect(await enqueue.exited).toBe(2);
    expect(enqueue.output()).toContain('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL must be one of http/json, http/protobuf, grpc (got "json")');
    // Nothing was enqueued.
    expect(await waiting()).toBe(before);
  });

  it('traces every process the README shows when started as the README shows it (the plain binary, no --import)', async () => {
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '100' };
    const worker = run(
      ['worker', 'email'],
      { ...otel, OTEL_SERVICE_NAME: 'plain-worker', SMTP_URL: sink.url, QUEUELENS_SHUTDOWN_TIMEOUT: '10' },
      redis.url,
      true,
    );
    await waitFor('worker started', () => worker.output().includes('workers started'), 15_000);
    const enqueue = run(
      ['enqueue', 'email', '--data', '{"template":"welcome","to":"jo@example.com"}'],
      { ...otel, OTEL_SERVICE_NAME: 'plain-enqueue' },
      redis.url,
      true,
    );
    expect(await enqueue.exited).toBe(0);
    const { id } = JSON.parse(enqueue.output().trim().split('\n').pop()!) as { id: string };
    const loadgen = run(
      ['loadgen', '--rate', '5', '--duration', '1', '--webhook-target', 'http://127.0.0.1:9/h'],
      { ...otel, OTEL_SERVICE_NAME: 'plain-loadgen', LOG_LEVEL: 'warn' },
      redis.url,
      true,
    );
    expect(await loadgen.exited).toBe(0);
    await waitFor('consumer span of the enqueued job', () => allSpans().some((s) => s.service === 'plain-worker' && s.name === 'process email'), 30_000);
    worker.proc.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    const demo = run(
      ['demo', '--redis-url', redis.url, '--port', String(await freePort()), '--prometheus-port', '0', '--jobs-per-second', '5'],
      { ...otel, OTEL_SERVICE_NAME: 'plain-demo' },
      redis.url,
      true,
    );
    await waitFor(
      'demo producer and consumer spans',
      () => {
        const names = allSpans()
          .filter((s) => s.service === 'plain-demo')
          .map((s) => s.name);
        return names.some((n) => n.startsWith('add ')) && names.some((n) => n.startsWith('process '));
      },
      60_000,
    );
    demo.proc.kill('SIGINT');
    expect(await demo.exited).toBe(0);

    const spans = allSpans();
    const add = spans.find((s) => s.service === 'plain-enqueue' && s.name === 'add email.welcome')!;
    expect(add.attributes.find((a) => a.key === 'messaging.message.id')?.value.stringValue).toBe(id);
    expect(spans.find((s) => s.service === 'plain-worker' && s.name === 'process email' && s.traceId === add.traceId)?.parentSpanId).toBe(add.spanId);
    expect(spans.filter((s) => s.service === 'plain-loadgen' && s.name.startsWith('add ')).length).toBeGreaterThanOrEqual(1);
    for (const p of [worker, enqueue, loadgen, demo]) expect(p.output()).not.toContain('queuelens: tracing');
  });

  it('says at start-up when tracing is asked for and cannot work, and still does the job', async () => {
    const bad = run(
      ['enqueue', 'email', '--data', '{"template":"welcome","to":"kim@example.com"}'],
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'otel-collector:4318' },
      redis.url,
      true,
    );
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toContain(
      'OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL such as http://otel-collector:4318 (got "otel-collector:4318")',
    );

    const closed = await freePort(); // nothing listens there
    const nobody = run(
      ['enqueue', 'email', '--data', '{"template":"welcome","to":"lou@example.com"}'],
      { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}` },
      redis.url,
      true,
    );
    expect(await nobody.exited).toBe(0);
    const out = nobody.output();
    const { id } = JSON.parse(
      out
        .trim()
        .split('\n')
        .find((l) => l.startsWith('{'))!,
    ) as { id: string };
    expect(await redis.client().exists(`bull:email:${id}`)).toBe(1);
    expect(out).toContain(
      `queuelens: tracing requested (OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:${closed}) but nothing answers there (ECONNREFUSED at 127.0.0.1:${closed})`,
    );
    expect(out).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('traces nothing when no endpoint is set', async () => {
    const before = received.length;
    const enqueue = run(['enqueue', 'email', '--data', '{"template":"welcome","to":"gina@example.com"}'], {});
    expect(await enqueue.exited).toBe(0);
    const { id } = JSON.parse(enqueue.output().trim().split('\n').pop()!) as { id: string };
    // No telemetry hook: BullMQ stores no trace context with the job.
    const opts = JSON.parse((await redis.client().hget(`bull:email:${id}`, 'opts'))!) as Record<string, unknown>;
    expect(opts.tm).toBeUndefined();
    expect(received.length).toBe(before);
  });
});
