// Finds a Redis to use for the demo: the one at REDIS_URL if it answers, else a private redis-server on a free
// loopback port (when the binary is installed), else an error that says how to get one.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { watchChild } from '../util/watch-child.js';
import { demoTempDir } from './demo-tmp.js';
import type { Logger } from '../log/logger.js';
import { safeUrl } from '../log/redact.js';

export interface LocalRedis {
  url: string;
  /** True when this process started the server (and stops it on close). */
  private: boolean;
  close(): Promise<void>;
}

export class NoRedisError extends Error {}

export async function pingRedis(url: string, timeoutMs = 1500): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    enableOfflineQueue: false,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return true;
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** A free TCP port on 127.0.0.1 (the private servers of the demo listen there). */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export async function ensureRedis(url: string, log: Logger): Promise<LocalRedis> {
  if (await pingRedis(url)) return { url, private: false, close: async () => undefined };
  if (spawnSync('redis-server', ['--version']).error) {
    throw new NoRedisError(
      `No Redis answers at ${safeUrl(url)} and redis-server is not installed.\n` +
        'Install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`; macOS: `brew install redis`) and run this again,\n' +
        'or point REDIS_URL at a running Redis (e.g. REDIS_URL=redis://host:6379).',
    );
  }
  const port = await freeLoopbackPort();
  const dir = demoTempDir('redis');
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
    // Own process group: Ctrl-C in the terminal must not kill Redis before the workers have closed.
    detached: true,
  });
  child.unref();
  watchChild(child, dir);
  const privateUrl = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (!(await pingRedis(privateUrl, 300))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new NoRedisError(`could not start a private redis-server on port ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  log.info({ redis: privateUrl, reason: `nothing answered at ${safeUrl(url)}` }, 'started a private redis-server for the demo');
  return {
    url: privateUrl,
    private: true,
    async close() {
      if (child.exitCode === null) {
        // Referenced again while it stops: unreferenced, nothing else may keep the event loop alive, and the demo
        // would exit 0 before the server's exit and this directory's removal (left to the watchdog, a second later).
        child.ref();
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
