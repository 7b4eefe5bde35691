// The worker side against a real 3-master Redis Cluster: `enqueue` and the Producer add jobs under a hash-tagged
// prefix, `queuelens worker` processes them (two worker processes whose prefixes live on different masters),
// `dlq redrive` re-enqueues dead letters, `loadgen` adds what it reports, and an untagged prefix is refused.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Producer } from '../src/jobs/producer.js';
import { QUEUE_NAMES } from '../src/jobs/schemas.js';
import { queueKey } from '../src/redis/keys.js';
import { waitFor } from './helpers/bullmq.js';
import { runCli, spawnCli, type CliProcess } from './helpers/cli.js';
import { startTestCluster, type TestCluster } from './helpers/redis-cluster.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtp-sink.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const SECRET = 'cluster-workers-secret';
let cluster: TestCluster;
let nodes: string;
let smtp: SmtpSink;
let rx: WebhookReceiver;
let rxDlq: WebhookReceiver;
let exportDir: string;
/** Hash-tagged prefixes whose slots are served by different masters: one per worker process. */
let prefixes: string[];
const procs: CliProcess[] = [];
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  cluster = await startTestCluster(3);
  nodes = cluster.nodes.join(',');
  [smtp, rx, rxDlq] = await Promise.all([startSmtpSink(), startWebhookReceiver(SECRET), startWebhookReceiver(SECRET)]);
  exportDir = mkdtempSync(join(tmpdir(), 'queuelens-cluster-exports-'));
  const byMaster = new Map<number, string>();
  for (let i = 0; byMaster.size < 3; i += 1) {
    const prefix = `{ql${i}}`;
    const master = await cluster.masterOf(queueKey({ prefix, name: 'email' }, 'wait'));
    if (!byMaster.has(master)) byMaster.set(master, prefix);
  }
  prefixes = [...byMaster.values()];
}, 60_000);

afterAll(async () => {
  for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  await Promise.allSettled(closers.reverse().map((c) => c()));
  await Promise.allSettled([smtp?.close(), rx?.close(), rxDlq?.close()]);
  await cluster?.stop();
  if (exportDir) rmSync(exportDir, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli([...args, '--redis-cluster-nodes', nodes, '--log-level', 'silent']);

function producer(prefix: string): Producer {
  const p = new Producer({ redisUrl: 'redis://127.0.0.1:6379', clusterNodes: cluster.nodes, prefix });
  closers.push(() => p.close());
  return p;
}

function worker(queues: string, prefix: string): CliProcess {
  const p = spawnCli(['worker', queues, '--prefix', prefix, '--webhook-allow', '127.0.0.1', '--export-dir', exportDir], {
    REDIS_CLUSTER_NODES: nodes,
    SMTP_URL: smtp.url,
    WEBHOOK_SECRET: SECRET,
    LOG_LEVEL: 'info',
  });
  procs.push(p);
  return p;
}

async function stop(p: CliProcess): Promise<void> {
  p.proc.kill('SIGTERM');
  expect((await p.exited).code, p.output()).toBe(0);
}

/** Jobs in a queue's completed / failed set, read from Redis itself. */
async function finished(prefix: string, queue: string): Promise<{ completed: string[]; failed: string[] }> {
  const c = cluster.client();
  const ref = { prefix, name: queue };
  return { completed: await c.zrange(queueKey(ref, 'completed'), 0, '-1'), failed: await c.zrange(queueKey(ref, 'failed'), 0, '-1') };
}

describe('worker side on a Redis Cluster', () => {
  it('uses prefixes whose queues live on different masters', async () => {
    const masters = await Promise.all(prefixes.map((prefix) => cluster.masterOf(queueKey({ prefix, name: 'webhook' }, 'meta'))));
    expect(new Set(masters).size).toBe(3);
  });

  it('refuses a prefix without a hash tag: exit 2, naming the option, the reason and a fix; writes nothing', async () => {
    const runs = [
      await runCli(['worker', 'all'], { REDIS_CLUSTER_NODES: nodes }),
      await runCli(['enqueue', 'email', '--data', '{"template":"welcome","to":"a@example.com"}', '--prefix', 'app', '--redis-cluster-nodes', nodes]),
      await runCli(['loadgen', '--duration', '1'], { REDIS_CLUSTER_NODES: nodes, QUEUELENS_PREFIX: '{}bull' }),
      await runCli(['dlq', 'redrive', 'webhook', '--all', '--redis-cluster-nodes', nodes]),
    ];
    const shown = ['"bull"', '"app"', '"{}bull"', '"bull"'];
    const fixes = ['{bull}', '{app}', '{bull}', '{bull}'];
    for (const [i, r] of runs.entries()) {
      expect(r.code, r.output).toBe(2);
      expect(r.output).toContain(`invalid --prefix (QUEUELENS_PREFIX) ${shown[i]} with --redis-cluster-nodes (REDIS_CLUSTER_NODES)`);
      expect(r.output).toContain(`the prefix needs a hash tag, e.g. ${fixes[i]}, so that every key of a queue lands in one slot`);
      expect(r.output).toContain('CROSSSLOT');
      expect(r.output).not.toMatch(/\n\s+at /);
    }
    const c = cluster.client();
    await c.ping();
    const masters = c.nodes('master');
    expect(masters).toHaveLength(3);
    for (const master of masters) expect(await master.dbsize()).toBe(0);
    expect(() => new Producer({ redisUrl: 'redis://127.0.0.1:6379', clusterNodes: cluster.nodes })).toThrow(
      /BullMQ prefix "bull": on a Redis Cluster the prefix needs a hash tag/,
    );
  });

  it('exits 1 naming the option when no cluster node answers', async () => {
    const r = await runCli([
      'enqueue',
      'email',
      '--data',
      '{"template":"welcome","to":"a@example.com"}',
      '--prefix',
      '{x}',
      '--redis-cluster-nodes',
      '127.0.0.1:1',
    ]);
    expect(r.code, r.output).toBe(1);
    expect(r.output).toContain('Redis Cluster is unreachable at 127.0.0.1:1');
    expect(r.output).toContain('--redis-cluster-nodes (REDIS_CLUSTER_NODES)');
  });

  it('processes every job added through `enqueue` and the Producer', async () => {
    const prefix = prefixes[0]!;
    const added: Record<string, string[]> = { email: [], webhook: [], export: [] };
    const cliJobs: Array<[string, object]> = [
      ['email', { template: 'welcome', to: 'cli@example.com' }],
      ['webhook', { url: `${rx.url}/cli`, event: 'cli', payload: 1 }],
      ['export', { format: 'csv', rows: 3 }],
    ];
    for (const [queue, data] of cliJobs) {
      const r = await cli(['enqueue', queue, '--prefix', prefix, '--data', JSON.stringify(data)]);
      expect(r.code, r.output).toBe(0);
      const out = JSON.parse(r.output.trim()) as { queue: string; id: string };
      expect(out.queue).toBe(queue);
      added[queue]!.push(out.id);
    }
    const p = producer(prefix);
    for (let i = 0; i < 6; i += 1) added.email!.push((await p.enqueueEmail({ template: 'welcome', to: `user-${i}@example.com` })).id!);
    for (let i = 0; i < 5; i += 1) added.webhook!.push((await p.enqueueWebhook({ url: `${rx.url}/p${i}`, event: 'producer', payload: i })).id!);
    for (let i = 0; i < 2; i += 1) added.export!.push((await p.enqueueExport({ format: 'ndjson', rows: 2 + i })).id!);

    const w = worker('all', prefix);
    for (const queue of QUEUE_NAMES) {
      await waitFor(`${queue} jobs completed`, async () => (await finished(prefix, queue)).completed.length >= added[queue]!.length, 30_000);
      const done = await finished(prefix, queue);
      expect(done.completed.sort(), queue).toEqual([...added[queue]!].sort());
      expect(done.failed, queue).toEqual([]);
    }
    expect(smtp.mails.flatMap((m) => m.envelopeTo).sort()).toEqual(['cli@example.com', ...Array.from({ length: 6 }, (_, i) => `user-${i}@example.com`)].sort());
    expect(rx.deliveries.map((d) => d.path).sort()).toEqual(['/cli', '/p0', '/p1', '/p2', '/p3', '/p4']);
    expect(rx.deliveries.every((d) => d.signatureValid && d.answered === 200)).toBe(true);
    await stop(w);
  });

  it('dead-letters on one master and redrives with `dlq redrive`', async () => {
    const prefix = prefixes[1]!;
    const w = worker('webhook', prefix);
    const p = producer(prefix);
    rxDlq.script(...Array.from({ length: 3 }, () => ({ status: 500 })));
    const sources: string[] = [];
    for (let i = 0; i < 3; i += 1) sources.push((await p.enqueueWebhook({ url: `${rxDlq.url}/d${i}`, event: 'dlq', payload: i }, { attempts: 1 })).id!);
    const c = cluster.client();
    const dlqWait = queueKey({ prefix, name: 'webhook-dlq' }, 'wait');
    await waitFor('three dead letters', async () => (await c.llen(dlqWait)) === 3, 30_000);
    expect((await finished(prefix, 'webhook')).failed.sort()).toEqual([...sources].sort());

    const list = await cli(['dlq', 'list', 'webhook', '--prefix', prefix]);
    expect(list.code, list.output).toBe(0);
    expect(list.output).toContain('3 dead-lettered in webhook-dlq; showing 3');
    const redrive = await cli(['dlq', 'redrive', 'webhook', '--all', '--prefix', prefix]);
    expect(redrive.code, redrive.output).toBe(0);
    expect(JSON.parse(redrive.output.trim().split('\n').pop()!)).toEqual({ redriven: 3, 'would-redrive': 0, 'not-found': 0, invalid: 0, conflict: 0 });

    await waitFor('redriven jobs completed', async () => (await finished(prefix, 'webhook')).completed.length >= 3, 30_000);
    const done = await finished(prefix, 'webhook');
    expect(done.completed.every((id) => id.startsWith('redrive-'))).toBe(true);
    expect(done.completed).toHaveLength(3);
    expect(await c.llen(dlqWait)).toBe(0);
    const answered = (status: number) =>
      rxDlq.deliveries
        .filter((d) => d.answered === status)
        .map((d) => d.path)
        .sort();
    expect(answered(500)).toEqual(['/d0', '/d1', '/d2']);
    expect(answered(200)).toEqual(['/d0', '/d1', '/d2']);
    await stop(w);
  });

  it('`loadgen` adds on the cluster exactly what it reports', async () => {
    const prefix = prefixes[2]!;
    const r = await cli(['loadgen', '--prefix', prefix, '--rate', '30', '--duration', '1', '--failure-share', '0']);
    expect(r.code, r.output).toBe(0);
    const report = JSON.parse(r.output.trim().split('\n').pop()!) as { enqueued: number; counts: Record<string, { sent: number }> };
    expect(report.enqueued).toBeGreaterThan(0);
    let total = 0;
    for (const [queue, { sent }] of Object.entries(report.counts)) {
      const q = new Queue(queue, { connection: cluster.client(), prefix, skipMetasUpdate: true });
      closers.push(() => q.close());
      expect(await q.count(), queue).toBe(sent);
      total += sent;
    }
    expect(total).toBe(report.enqueued);
  });
});
