// Starts a private redis-server on a free loopback port, so a test can stop, kill and restart it.
// It never touches a Redis it did not start.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { watchChild } from '../../src/util/watch-child.js';

export interface TestRedis {
  port: number;
  password?: string;
  url: string;
  /** A fresh client; closed by stop(). */
  client(): Redis;
  /** SIGKILL the server (data is lost unless persistence was on). */
  kill(): Promise<void>;
  /** Start the server again on the same port and directory. */
  restart(): Promise<void>;
  /** SIGSTOP the server: connections stay open and nothing answers (a hung Redis). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  stop(): Promise<void>;
}

export interface TestRedisOptions {
  /** Extra redis-server arguments, e.g. ['--appendonly', 'yes']. */
  args?: string[];
  /** Require this password (url and client() carry it). */
  password?: string;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function assertRedisServerInstalled(): void {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    throw new Error(
      'redis-server is not on PATH. The tests start their own Redis: install it with `apt-get install -y redis-server` (Debian/Ubuntu) and run the tests again.',
    );
  }
}

export async function startTestRedis(opts: TestRedisOptions = {}): Promise<TestRedis> {
  assertRedisServerInstalled();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'queuelens-redis-'));
  const clients: Redis[] = [];
  let proc: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const auth = opts.password ? ['--requirepass', opts.password] : [];
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...auth, ...(opts.args ?? [])];
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    // A test file killed on timeout must not leave its server behind.
    watchChild(child, dir);
    proc = child;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = new Redis({ port, host: '127.0.0.1', password: opts.password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return;
      } catch {
        probe.disconnect();
        if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode} on port ${port}`);
        if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within 10 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };

  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const child = proc;
    proc = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  };

  await launch();
  return {
    port,
    password: opts.password,
    url: opts.password ? `redis://:${encodeURIComponent(opts.password)}@127.0.0.1:${port}` : `redis://127.0.0.1:${port}`,
    client() {
      const c = new Redis({ port, host: '127.0.0.1', password: opts.password, maxRetriesPerRequest: null });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    kill: () => terminate('SIGKILL'),
    restart: launch,
    pause: () => proc?.kill('SIGSTOP'),
    resume: () => proc?.kill('SIGCONT'),
    async stop() {
      proc?.kill('SIGCONT');
      for (const c of clients.splice(0)) c.disconnect();
      await terminate('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Every command the server runs, from MONITOR on a connection of its own. A line ioredis does not read as monitor
 * output ("Command queue state error", emitted as 'error', the line quoted in it) is parsed from the error and
 * delivered; ignored once stopped. Any other error is thrown by stop().
 */
export async function monitorCommands(redis: TestRedis, onCommand: (args: string[], source?: string) => void): Promise<{ stop(): void }> {
  // Listeners before the connection, not after monitor() resolves: the lines that follow MONITOR's OK in the same
  // chunk are handled before that promise's continuation, and an 'error' with no listener would throw.
  const monitor = redis.client().duplicate({ monitor: true, lazyConnect: true });
  let stopped = false;
  let failure: Error | undefined;
  monitor.on('error', (err: Error) => {
    // A line that reaches ioredis while it is not yet (or no longer) reading in monitor mode comes back as this
    // error, the line itself quoted in the message: deliver it rather than fail the test or lose the command.
    const line = /^Command queue state error\..*Last reply: \S+ \[(?:\d+ )?([^\]]*)\] (.*)$/s.exec(err.message);
    if (line) {
      if (!stopped)
        onCommand(
          [...line[2]!.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, '$1')),
          line[1],
        );
      return;
    }
    if (!stopped) failure ??= err;
  });
  // `source`: the client's address (ip:port), to tell connections apart; unknown for a line parsed from an error.
  monitor.on('monitor', (_t: string, args: string[], source: string) => onCommand(args, source));
  await new Promise<void>((resolve, reject) => {
    monitor.once('monitoring', () => resolve());
    monitor.connect().catch(reject);
  });
  return {
    stop() {
      stopped = true;
      monitor.disconnect();
      if (failure) throw failure;
    },
  };
}

/**
 * A private Redis for the enclosing describe (vitest beforeAll/afterAll) and one raw client on it: read `raw` and
 * `redis` inside the tests.
 */
export function privateRedis(): { readonly redis: TestRedis; readonly raw: Redis } {
  let redis: TestRedis | undefined;
  let raw: Redis | undefined;
  beforeAll(async () => {
    redis = await startTestRedis();
    raw = redis.client();
  });
  afterAll(async () => {
    raw?.disconnect();
    await redis?.stop();
  });
  return {
    get redis() {
      return redis as TestRedis;
    },
    get raw() {
      return raw as Redis;
    },
  };
}
