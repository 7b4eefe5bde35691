// The sidecar as a real process: Redis killed and restarted under it, signals, and no password in any log line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { spawnCli, type CliProcess } from './helpers/cli.js';
import { parsePromText, seriesKey, seriesOf } from './helpers/prom-text.js';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';

const PASSWORD = 's3cret-Pa55word';
const INTERVAL = 0.5;
let redis: TestRedis;
let bull: BullFixtures;
let sidecar: CliProcess;
let base: string;

async function get(path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(base + path);
  return { status: res.status, body: await res.text() };
}

beforeAll(async () => {
  // Persistence on, so the queues survive the restart and recovery can be checked value for value.
  redis = await startTestRedis({ password: PASSWORD, args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  bull = new BullFixtures(redis);
  const q = bull.queue('orders');
  for (let i = 0; i < 3; i += 1) await q.add('o', { i });
  await bull.close();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  sidecar = spawnCli(
    [
      'sidecar',
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--collect-interval',
      String(INTERVAL),
      '--discovery-interval',
      '1',
      // What the SIGTERM test checks is a clean, ordered exit; how fast it is (5 s by default) would only measure how
      // busy this machine is, so the deadline here is generous.
      '--shutdown-timeout',
      '30',
    ],
    {
      REDIS_URL: redis.url,
      LOG_LEVEL: 'debug',
    },
  );
  await waitFor('sidecar healthy', async () => (await get('/health').catch(() => ({ status: 0 }))).status === 200, 15_000);
});

afterAll(async () => {
  if (sidecar && sidecar.proc.exitCode === null) sidecar.proc.kill('SIGKILL');
  await redis?.stop();
});

describe('sidecar process', () => {
  it('exports the queue while Redis is up', async () => {
    const m = parsePromText((await get('/metrics')).body);
    expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'orders', state: 'waiting' }))).toBe(3);
    expect(m.get('bullmq_exporter_up')).toBe(1);
  });

  it('keeps answering with up 0 and no stale queue values while Redis is down, then recovers by itself', async () => {
    await redis.kill();

    const down = await waitFor('down metrics', async () => {
      const r = await get('/metrics');
      const m = parsePromText(r.body);
      return r.status === 200 && m.get('bullmq_exporter_up') === 0 && m.get('bullmq_exporter_redis_up') === 0 ? m : undefined;
    });
    expect(seriesOf(down, 'bullmq_queue_jobs')).toEqual([]);
    expect(down.get('bullmq_exporter_collect_errors_total')).toBeGreaterThan(0);

    const health = await waitFor('health 503', async () => {
      const r = await get('/health');
      return r.status === 503 ? r : undefined;
    });
    // How soon (3 collect intervals) is the sidecar's own rule, on its own clock; a wall-clock bound here would only
    // measure how busy this machine is. What it says matters: unavailable, and why.
    expect(JSON.parse(health.body).status).toBe('unavailable');
    // The reason names the address (password masked) and, once a reconnect failed, why; never ioredis's internal wording.
    const reasonsOf = (body: string) => (JSON.parse(body) as { reasons: string[] }).reasons.join('\n');
    const internals = /Stream isn't writeable|enableOfflineQueue|Connection is closed/;
    expect(reasonsOf(health.body)).toContain(`last collection failed: Redis at redis://:***@127.0.0.1:${redis.port} is unreachable (`);
    expect(reasonsOf(health.body)).not.toMatch(internals);
    const refused = await waitFor('the reason to say the connection was refused', async () => {
      const reasons = reasonsOf((await get('/health')).body);
      expect(reasons).not.toMatch(internals);
      return reasons.includes(`Redis at redis://:***@127.0.0.1:${redis.port} is unreachable (connect ECONNREFUSED 127.0.0.1:${redis.port}); retrying`)
        ? reasons
        : undefined;
    });
    expect(refused).not.toContain(PASSWORD);

    await redis.restart();
    await waitFor(
      'recovered',
      async () => {
        const r = await get('/health');
        const m = parsePromText((await get('/metrics')).body);
        return r.status === 200 && m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'orders', state: 'waiting' })) === 3;
      },
      30_000,
    );
  });

  it('exits 0 on SIGTERM, in order, with no unhandled rejection and no password in any log line', async () => {
    const inflight = get('/metrics');
    sidecar.proc.kill('SIGTERM');
    const { code } = await sidecar.exited;
    // Before its own shutdown deadline: past it, it exits 1 ('shutdown deadline passed').
    expect(code, sidecar.output().slice(-2000)).toBe(0);
    // The request sent just before the signal is either answered in full or (if it had not reached the server
    // yet) refused; a connection cut off mid-request would be a reset.
    const outcome = await inflight.then(
      (r) => `answered ${r.status}`,
      (err: Error & { cause?: { code?: string } }) => `refused ${err.cause?.code}`,
    );
    expect(outcome).toMatch(/^(answered (200|503)|refused ECONNREFUSED)$/);
    const out = sidecar.output();
    expect(out).toContain('shutdown complete');
    expect(out).not.toMatch(/unhandled/i);
    expect(out).not.toContain(PASSWORD);
    expect(out).toContain('redis://:***@127.0.0.1');
  });
});
