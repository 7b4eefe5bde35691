// Redis's own account of what a benchmark window cost it (INFO cpu, INFO commandstats), and /metrics polling, shared
// by bench/at-rest.ts and bench/with-traffic.ts.
import { spawn } from 'node:child_process';
import type { Redis } from 'ioredis';
import { freePort, startTestRedis, type TestRedis } from '../../test/helpers/redis-server.js';

export const WINDOW_S = 15;

export interface Cost {
  /** Redis CPU per WINDOW_S (a longer window is scaled down to it). */
  cpuMs: number;
  callsPerS: number;
  /** Per command (INFO commandstats, scripts' inner commands listed by name too): calls/s and usec per WINDOW_S. */
  commands?: Map<string, { callsPerS: number; usec: number }>;
  /**
   * Redis command time per WINDOW_S (ms): INFO commandstats usec of every command, each counted once whether a
   * client or a script ran it; the scripts' own Lua overhead (their EVAL/EVALSHA time beyond the commands inside)
   * is left out, since commandstats cannot tell it apart. Steadier than the process CPU (no event loop, no socket
   * I/O, no background tasks), and it leaves out more of a script-heavy client's cost (BullMQ's getJobCounts) than
   * of a client that sends plain commands.
   */
  commandMs: number;
}

/** Script commands: their usec already holds the time of the commands they ran, which are counted by name too. */
const SCRIPT_COMMANDS = /^(eval|evalsha|eval_ro|evalsha_ro|fcall|fcall_ro)$/;

export async function cpuUsec(admin: Redis): Promise<number> {
  const info = (await admin.info('cpu')) as string;
  const v = (k: string) => Number(info.match(new RegExp(`^${k}:([\\d.]+)`, 'm'))?.[1] ?? 0);
  return Math.round((v('used_cpu_user') + v('used_cpu_sys')) * 1e6);
}

/** INFO commandstats: calls and usec per command. */
export async function commandStats(admin: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const info = (await admin.info('commandstats')) as string;
  const out = new Map<string, { calls: number; usec: number }>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) out.set(m[1] as string, { calls: Number(m[2]), usec: Number(m[3]) });
  return out;
}

/**
 * Runs `during` for one window (`seconds`, WINDOW_S unless told) and returns the Redis CPU and calls of that window
 * (the admin's own few included), scaled to WINDOW_S, with the per-command split.
 */
export async function window(admin: Redis, during: (endsAt: number) => Promise<void>, seconds = WINDOW_S): Promise<Cost> {
  const endsAt = Date.now() + seconds * 1000;
  const cpu0 = await cpuUsec(admin);
  const stats0 = await commandStats(admin);
  await during(endsAt);
  await new Promise((r) => setTimeout(r, Math.max(0, endsAt - Date.now())));
  const cpu1 = await cpuUsec(admin);
  const stats1 = await commandStats(admin);
  const commands = new Map<string, { callsPerS: number; usec: number }>();
  let n = 0;
  for (const [name, { calls: c, usec }] of stats1) {
    const before = stats0.get(name) ?? { calls: 0, usec: 0 };
    n += c - before.calls;
    if (c > before.calls) commands.set(name, { callsPerS: (c - before.calls) / seconds, usec: ((usec - before.usec) * WINDOW_S) / seconds });
  }
  let usec = 0;
  for (const [name, c] of commands) if (!SCRIPT_COMMANDS.test(name)) usec += c.usec;
  return { cpuMs: ((cpu1 - cpu0) / 1000) * (WINDOW_S / seconds), callsPerS: n / seconds, commands, commandMs: usec / 1000 };
}

export async function scrapeUntil(url: string, done: (body: string) => boolean, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const body = await fetch(url)
      .then((r) => r.text())
      .catch(() => '');
    if (done(body)) return body;
    if (Date.now() > deadline) throw new Error(`${url}: not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export const gauge = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

export interface SidecarProcess {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * The real `queuelens sidecar` process (dist/cli) on `prefix`, with `extra` options, once it exports every queue and
 * has loaded every queue's event state (a lag series each).
 */
export async function startSidecarProcess(o: {
  cli: string;
  redisUrl: string;
  prefix: string;
  size: number;
  own: string;
  extra?: string[];
}): Promise<SidecarProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/metrics`;
  const args = ['--redis-url', o.redisUrl, '--port', String(port), '--host', '127.0.0.1', '--prefixes', o.prefix, '--max-queues', String(o.size)];
  const proc = spawn(process.execPath, [o.cli, 'sidecar', ...args, '--own-prefix', o.own, '--log-level', 'warn', ...(o.extra ?? [])], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = async () => {
    proc.kill('SIGTERM');
    await exited;
  };
  try {
    await scrapeUntil(
      url,
      (body) =>
        gauge(body, `bullmq_exporter_queues{prefix="${o.prefix}"}`) === o.size &&
        (body.match(/^bullmq_exporter_events_lag_seconds\{/gm)?.length ?? 0) === o.size,
      300_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, pid: proc.pid as number, stop };
}

/** `measure` at each size, each on a private redis-server of its own; each row is printed as it comes. */
export async function eachSize<R>(sizes: readonly number[], measure: (server: TestRedis, size: number) => Promise<R>): Promise<R[]> {
  const rows: R[] = [];
  for (const size of sizes) {
    const server = await startTestRedis();
    try {
      rows.push(await measure(server, size));
      console.log(JSON.stringify(rows.at(-1)));
    } finally {
      await server.stop();
    }
  }
  return rows;
}
