// Real BullMQ producers and workers on the PostgreSQL backend, closed together at the end.
import { FlowProducer, Queue, Worker, createPostgresBackend, type Job, type JobType, type Processor, type QueueOptions, type WorkerOptions } from 'bullmq';
import type { TestPostgres } from './postgres-server.js';

type PgConnection = { connectionString: string; schema?: string; migrate?: boolean; max?: number };

export class PostgresBullFixtures {
  private readonly closers: Array<() => Promise<unknown>> = [];

  constructor(
    private readonly server: TestPostgres,
    readonly schema = 'bullmq',
  ) {}

  get connection(): PgConnection {
    return { connectionString: this.server.url, schema: this.schema, max: 4 };
  }

  /** Creates BullMQ's schema (its own migrations), once, before the queues use it. */
  async migrate(): Promise<void> {
    const q = new Queue('__migrate__', { connection: { ...this.connection, migrate: true } }, createPostgresBackend);
    await q.waitUntilReady();
    await q.obliterate({ force: true });
    await q.close();
  }

  queue(name: string, opts: Partial<QueueOptions<PgConnection>> = {}): Queue {
    const q = new Queue(name, { connection: this.connection, ...opts }, createPostgresBackend);
    q.on('error', () => undefined);
    this.closers.push(() => q.close());
    return q as unknown as Queue;
  }

  worker(name: string, processor: Processor, opts: Partial<WorkerOptions<PgConnection>> = {}): Worker {
    const w = new Worker(name, processor, { connection: this.connection, ...opts }, createPostgresBackend);
    w.on('error', () => undefined);
    this.closers.push(() => w.close(true));
    return w as unknown as Worker;
  }

  flow(): FlowProducer {
    const f = new FlowProducer({ connection: this.connection }, createPostgresBackend);
    this.closers.push(() => f.close());
    return f as unknown as FlowProducer;
  }

  /**
   * Every waiting-side state in one queue, none run (no worker): 3 plain jobs and the 2 children of a flow waiting,
   * 2 prioritized, 3 delayed of which one is due at once (overdue while no worker fetches), the flow's parent waiting
   * for its children. Returns the plain jobs (the first is the head) and the due one.
   */
  async addMixedJobs(name: string): Promise<{ plain: Job[]; due: Job }> {
    const q = this.queue(name);
    const plain: Job[] = [];
    for (let i = 0; i < 3; i++) plain.push(await q.add('plain', { i }));
    await q.add('prio', {}, { priority: 1 });
    await q.add('prio', {}, { priority: 7 });
    await q.add('later', {}, { delay: 3_600_000 });
    await q.add('later', {}, { delay: 3_600_000 });
    const due = await q.add('due', {}, { delay: 1 });
    await this.flow().add({
      name: 'parent',
      queueName: name,
      children: [
        { name: 'child', queueName: name, data: {} },
        { name: 'child', queueName: name, data: {} },
      ],
    });
    return { plain, due };
  }

  /**
   * BullMQ's own getJobCounts() of a queue, keyed like QueueState.jobs. BullMQ counts a paused queue's waiting jobs as
   * `paused`; queuelens keeps them in waiting (with the paused flag), so they are added there.
   */
  async countsOf(name: string): Promise<Record<'waiting' | 'prioritized' | 'delayed' | 'active' | 'waiting_children' | 'completed' | 'failed', number>> {
    const types = ['waiting', 'paused', 'prioritized', 'delayed', 'active', 'waiting-children', 'completed', 'failed'] as JobType[];
    const t: Record<string, number | undefined> = await this.queue(name).getJobCounts(...types);
    const n = (k: string) => t[k] ?? 0;
    return {
      waiting: n('waiting') + n('paused'),
      prioritized: n('prioritized'),
      delayed: n('delayed'),
      active: n('active'),
      waiting_children: n('waiting-children'),
      completed: n('completed'),
      failed: n('failed'),
    };
  }

  async close(): Promise<void> {
    for (const c of this.closers.splice(0).reverse()) await c().catch(() => undefined);
  }
}
