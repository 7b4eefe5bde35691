// Real BullMQ producers and workers for tests, closed together at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { FlowProducer, Queue, Worker, type Processor, type QueueOptions, type WorkerOptions } from 'bullmq';
import type { TestRedis } from './redis-server.js';

export class BullFixtures {
  private readonly closers: Array<() => Promise<unknown>> = [];
  private readonly children: ChildProcess[] = [];

  constructor(private readonly redis: TestRedis) {}

  get connection() {
    return { host: '127.0.0.1', port: this.redis.port, password: this.redis.password, maxRetriesPerRequest: null };
  }

  queue(name: string, opts: Partial<QueueOptions> = {}): Queue {
    const q = new Queue(name, { connection: this.connection, ...opts });
    this.closers.push(() => q.close());
    return q;
  }

  worker(name: string, processor: Processor, opts: Partial<WorkerOptions> = {}): Worker {
    const w = new Worker(name, processor, { connection: this.connection, ...opts });
    w.on('error', () => undefined);
    this.closers.push(() => w.close(true));
    return w;
  }

  flow(opts: { prefix?: string } = {}): FlowProducer {
    const f = new FlowProducer({ connection: this.connection, ...opts });
    this.closers.push(() => f.close());
    return f;
  }

  /** Starts test/fixtures/stuck-worker.mjs; resolves with the process once it has taken a job. */
  async stuckWorker(queue: string, lockDurationMs: number, opts: { skipStalledCheck?: boolean } = {}): Promise<{ proc: ChildProcess; jobId: string }> {
    const args = [String(this.redis.port), queue, String(lockDurationMs), ...(opts.skipStalledCheck ? ['skip-stalled-check'] : [])];
    const proc = spawn(process.execPath, [new URL('../fixtures/stuck-worker.mjs', import.meta.url).pathname, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.children.push(proc);
    const jobId = await new Promise<string>((resolve, reject) => {
      let buf = '';
      proc.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const m = /ACTIVE (\S+)/.exec(buf);
        if (m) resolve(m[1]!);
      });
      proc.once('exit', (code) => reject(new Error(`stuck worker exited early with ${code}`)));
    });
    return { proc, jobId };
  }

  async close(): Promise<void> {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.allSettled(
      this.closers
        .splice(0)
        .reverse()
        .map((c) => c()),
    );
  }
}

/** Polls until `fn` yields a value. The default timeout is generous: a slow machine is no failure, only a condition that never holds. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
