// A client that never finishes its request must not hold the sidecar's shutdown hostage. A graceful close lets
// in-flight requests finish, but a connection with half a request (headers never ended: a slow or stuck scraper, a
// port scanner) is not idle, so the HTTP server's close would wait for Node's headers timeout (60 s or more), past
// the shutdown deadline: the process then exits 1 ('shutdown deadline passed') instead of 0.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { spawnCli, type CliProcess } from './helpers/cli.js';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
let sidecar: CliProcess;
let port: number;
const sockets: Socket[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  port = await freePort();
  sidecar = spawnCli(
    // A deadline far below Node's headers timeout, far above the time a loaded machine needs to shut down.
    ['sidecar', '--port', String(port), '--host', '127.0.0.1', '--collect-interval', '0.5', '--shutdown-timeout', '30'],
    { REDIS_URL: redis.url, LOG_LEVEL: 'debug' },
  );
  await waitFor('sidecar healthy', async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.status === 200, 15_000);
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  if (sidecar && sidecar.proc.exitCode === null) sidecar.proc.kill('SIGKILL');
  await redis?.stop();
});

describe('sidecar shutdown with a stuck client', () => {
  it('exits 0 on SIGTERM while a client holds a connection with an unfinished request', async () => {
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // Headers begun, never ended.
    socket.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // The server has the connection once it answers another client.
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);

    sidecar.proc.kill('SIGTERM');
    const { code } = await sidecar.exited;
    expect(code, sidecar.output().slice(-2000)).toBe(0);
    expect(sidecar.output()).toContain('shutdown complete');
  }, 120_000);
});
