// The export worker: file contents and checksums against independently built ground truth, temp-file
// hygiene, progress, and the export-ready email.
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idempotentJobId } from '../src/jobs/producer.js';
import { emailProcessor } from '../src/workers/email-processor.js';
import { exportProcessor, type ExportResult } from '../src/workers/export-processor.js';
import { waitFor } from './helpers/bullmq.js';
import { spawnCli } from './helpers/cli.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtp-sink.js';
import { WorkerHarness } from './helpers/workers.js';

let redis: TestRedis;
let sink: SmtpSink;
let h: WorkerHarness;
let dir: string;
const MAX_BYTES = 1_000_000;

beforeAll(async () => {
  redis = await startTestRedis();
  sink = await startSmtpSink();
  dir = mkdtempSync(join(tmpdir(), 'queuelens-export-'));
  h = new WorkerHarness(redis);
  await h.start('export', exportProcessor({ dir, producer: h.producer, chunkRows: 1000, sources: { broken, paged }, maxBytes: MAX_BYTES }).process, {
    concurrency: 2,
  });
  const mail = emailProcessor({ smtpUrl: sink.url, from: 'x@queuelens.test' });
  h.onClose(mail.close);
  await h.start('email', mail.process);
});

afterAll(async () => {
  await h?.close();
  await sink?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function* broken({ rows }: { rows: number }) {
  for (let i = 1; i <= rows; i += 1) {
    if (i === 1500) throw new Error('source connection reset');
    yield { id: i };
  }
}

/** A source that pages like a database cursor: asynchronous, a page of 500 rows at a time. */
async function* paged({ rows }: { rows: number }) {
  for (let i = 1; i <= rows; i += 1) {
    if (i % 500 === 1) await new Promise((r) => setTimeout(r, 1));
    yield { id: i, page: Math.ceil(i / 500) };
  }
}

/** Ground truth written without the code under test: the synthetic source's formula, by hand. */
function expectedRows(n: number): Array<[number, string, string, number, string]> {
  const plans = ['free', 'team', 'business', 'enterprise'];
  const out: Array<[number, string, string, number, string]> = [];
  for (let i = 1; i <= n; i += 1) {
    out.push([i, `acct-${(i * 2654435761) % 1000003}`, plans[i % 4]!, (i * 7919) % 100000, new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString()]);
  }
  return out;
}

const sha256 = (buf: Buffer | string) => createHash('sha256').update(buf).digest('hex');

async function finished(id: string): Promise<ExportResult> {
  const q = h.queue('export');
  await waitFor('export completed', async () => (await q.getJobState(id)) === 'completed', 30_000);
  return (await q.getJob(id))!.returnvalue as ExportResult;
}

describe('export worker', () => {
  it('writes CSV with a header and every row, with a checksum that matches the file', async () => {
    const job = await h.producer.enqueueExport({ format: 'csv', rows: 2500, fileName: 'accounts.csv' });
    const result = await finished(job.id!);
    const file = readFileSync(join(dir, 'accounts.csv'));
    const expected = ['id,account,plan,amount_cents,created_at', ...expectedRows(2500).map((r) => r.join(','))].join('\n') + '\n';
    expect(file.toString()).toBe(expected);
    expect(result).toEqual({ file: 'accounts.csv', rows: 2500, bytes: file.length, sha256: sha256(expected) });
    expect((await h.queue('export').getJob(job.id!))!.progress).toBe(100);
  });

  it('writes NDJSON, one object per row', async () => {
    const job = await h.producer.enqueueExport({ format: 'ndjson', rows: 1234 });
    const result = await finished(job.id!);
    expect(result.file).toBe(`export-${job.id}.ndjson`);
    const lines = readFileSync(join(dir, result.file), 'utf8').trimEnd().split('\n');
    const keys = ['id', 'account', 'plan', 'amount_cents', 'created_at'];
    expect(lines.map((l) => JSON.parse(l))).toEqual(expectedRows(1234).map((r) => Object.fromEntries(r.map((v, i) => [keys[i], v]))));
    expect(result.sha256).toBe(sha256(readFileSync(join(dir, result.file))));
  });

  it('reads an asynchronous source as it reads a synchronous one, the last chunk short', async () => {
    const job = await h.producer.enqueueExport({ format: 'ndjson', rows: 2345, source: 'paged', fileName: 'paged.ndjson' });
    const result = await finished(job.id!);
    const expected = Array.from({ length: 2345 }, (_, k) => `{"id":${k + 1},"page":${Math.ceil((k + 1) / 500)}}`).join('\n') + '\n';
    expect(readFileSync(join(dir, 'paged.ndjson'), 'utf8')).toBe(expected);
    expect(result).toEqual({ file: 'paged.ndjson', rows: 2345, bytes: Buffer.byteLength(expected), sha256: sha256(expected) });
  });

  it('reports progress as it goes', async () => {
    const seen: number[] = [];
    const job = await h.producer.enqueueExport({ format: 'csv', rows: 5000 });
    await finished(job.id!);
    const stream = await redis.client().xrange('bull:export:events', '-', '+');
    for (const [, fields] of stream) if (fields[1] === 'progress' && fields[3] === job.id) seen.push(Number(fields[5]));
    expect(seen).toEqual([20, 40, 60, 80, 100]);
  });

  it('enqueues the export-ready email once, and it is delivered with the checksum', async () => {
    const job = await h.producer.enqueueExport({ format: 'csv', rows: 10, fileName: 'small.csv', notify: 'carol@example.com' });
    const result = await finished(job.id!);
    const emailId = idempotentJobId(`export-ready:export:${job.id}`);
    const email = await waitFor('email job', () => h.queue('email').getJob(emailId));
    expect(email.name).toBe('export-ready');
    expect(email.data).toMatchObject({ template: 'export-ready', to: 'carol@example.com', vars: { file: 'small.csv', rows: 10, sha256: result.sha256 } });
    const mails = await sink.waitFor(1);
    expect(mails[0]!.envelopeTo).toEqual(['carol@example.com']);
    expect(mails[0]!.parsed.subject).toBe('Your export small.csv is ready');
    expect(mails[0]!.parsed.text).toContain(result.sha256);
  });

  it('fails an unknown source permanently, leaving no file and no temp file', async () => {
    const job = await h.producer.enqueueExport({ format: 'csv', rows: 10, source: 'missing', fileName: 'never.csv' });
    const dl = await waitFor('dead letter', async () => (await h.dlqJobs('export')).find((j) => j.data.source.jobId === job.id));
    expect(dl.data.failedReason).toMatch(/unknown export source "missing"/);
    expect(readdirSync(dir).filter((f) => f.startsWith('.') || f === 'never.csv')).toEqual([]);
  });

  it('removes the temp file when the source breaks midway, and retries', async () => {
    const job = await h.producer.enqueueExport({ format: 'ndjson', rows: 3000, source: 'broken', fileName: 'broken.ndjson' }, { attempts: 2, backoff: 10 });
    const dl = await waitFor('dead letter', async () => (await h.dlqJobs('export')).find((j) => j.data.source.jobId === job.id));
    expect(dl.data).toMatchObject({ attemptsMade: 2, failedReason: 'source connection reset' });
    expect(readdirSync(dir).filter((f) => f.startsWith('.') || f === 'broken.ndjson')).toEqual([]);
  });

  it('two jobs exporting to one file name at once: the file is one of them, and only that one completes', async () => {
    const counts = [12_000, 8_000];
    const jobs = await Promise.all(counts.map((rows) => h.producer.enqueueExport({ format: 'csv', rows, fileName: 'shared.csv' }, { attempts: 1 })));
    const q = h.queue('export');
    const states = await waitFor(
      'both finished',
      async () => {
        const s = await Promise.all(jobs.map((j) => q.getJobState(j.id!)));
        return s.every((x) => x === 'completed' || x === 'failed') && s;
      },
      60_000,
    );
    expect([...states].sort()).toEqual(['completed', 'failed']);
    const winner = states.indexOf('completed');
    const loser = (await q.getJob(jobs[1 - winner]!.id!))!;
    const result = (await q.getJob(jobs[winner]!.id!))!.returnvalue as ExportResult;
    // What is on disk is exactly the winner's export, as its report says.
    const onDisk = readFileSync(join(dir, 'shared.csv'));
    const expected = ['id,account,plan,amount_cents,created_at', ...expectedRows(counts[winner]!).map((r) => r.join(','))].join('\n') + '\n';
    expect(onDisk.toString()).toBe(expected);
    expect(result).toEqual({ file: 'shared.csv', rows: counts[winner], bytes: onDisk.length, sha256: sha256(onDisk) });
    expect(loser.failedReason).toMatch(/shared\.csv already exists in the export directory with other content/);
    expect(readdirSync(dir).filter((f) => f.startsWith('.shared.csv'))).toEqual([]);
  });

  it('completes a repeated export of the same content to a taken name: the file is what it reports', async () => {
    const first = await h.producer.enqueueExport({ format: 'ndjson', rows: 300, fileName: 'again.ndjson' });
    const a = await finished(first.id!);
    const second = await h.producer.enqueueExport({ format: 'ndjson', rows: 300, fileName: 'again.ndjson' });
    const b = await finished(second.id!);
    expect(b).toEqual(a);
    expect(sha256(readFileSync(join(dir, 'again.ndjson')))).toBe(a.sha256);
  });

  it('fails an export larger than EXPORT_MAX_BYTES for good, leaving no file and no temp file', async () => {
    // 30,000 rows of CSV: well over the 1 MB cap this worker runs with (about 60 bytes a row).
    expect(expectedRows(30_000).reduce((n, r) => n + r.join(',').length + 1, 0)).toBeGreaterThan(MAX_BYTES);
    const job = await h.producer.enqueueExport({ format: 'csv', rows: 30_000, fileName: 'huge.csv' }, { attempts: 3, backoff: 10 });
    const dl = await waitFor('dead letter', async () => (await h.dlqJobs('export')).find((j) => j.data.source.jobId === job.id));
    expect(dl.data).toMatchObject({ attemptsMade: 1 });
    expect(dl.data.failedReason).toBe(`export huge.csv would exceed EXPORT_MAX_BYTES (${MAX_BYTES} bytes); nothing was written`);
    expect(readdirSync(dir).filter((f) => f.includes('huge.csv'))).toEqual([]);
  });
});

// An export killed mid-write (SIGKILL, OOM) leaves its temp file; the next worker start removes it, and only what
// is surely abandoned: a live writer's file, another host's fresh one and finished exports stay.
describe('export temp files a stopped worker left', () => {
  it("are removed at start-up: this host's whose process is gone, and any untouched for over an hour", async () => {
    const exportDir = mkdtempSync(join(tmpdir(), 'queuelens-export-sweep-'));
    const uuid = () => randomUUID();
    const here = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
    const elsewhere = here === '00000000' ? '11111111' : '00000000';
    // A pid that surely belonged to a process now gone: a child that has exited.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const files = {
      deadHere: `.big.csv.${here}.${dead}.${uuid()}.tmp`,
      liveHere: `.live.csv.${here}.${process.pid}.${uuid()}.tmp`,
      otherHostFresh: `.other.csv.${elsewhere}.${dead}.${uuid()}.tmp`,
      otherHostOld: `.other-old.csv.${elsewhere}.${dead}.${uuid()}.tmp`,
      oldNamingOld: `.legacy.csv.${dead}.${uuid()}.tmp`,
      finished: 'big.csv',
    };
    for (const f of Object.values(files)) writeFileSync(join(exportDir, f), 'partial');
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    for (const f of [files.otherHostOld, files.oldNamingOld]) utimesSync(join(exportDir, f), twoHoursAgo, twoHoursAgo);
    const worker = spawnCli(['worker', 'export'], { REDIS_URL: redis.url, EXPORT_DIR: exportDir, LOG_LEVEL: 'info' });
    try {
      await waitFor('the worker to start', () => worker.output().includes('workers started') || worker.proc.exitCode !== null, 60_000);
      expect(readdirSync(exportDir).sort()).toEqual([files.finished, files.liveHere, files.otherHostFresh].sort());
      expect(worker.output()).toMatch(/"removed":3/);
    } finally {
      worker.proc.kill('SIGTERM');
      await worker.exited;
      rmSync(exportDir, { recursive: true, force: true });
    }
  });
});
