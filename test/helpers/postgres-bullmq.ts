// Real BullMQ producers and workers on the PostgreSQL backend, closed together at the end.
import { FlowProducer, Queue, Worker, createPostgresBackend, type Job, type Processor, type QueueOptions, type WorkerOptions } from 'bullmq';
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

  async close(): Promise<void> {
    for (const c of this.closers.splice(0).reverse()) await c().catch(() => undefined);
  }
}
