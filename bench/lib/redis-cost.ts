// Redis's own account of what a benchmark window cost it (INFO cpu, INFO commandstats), and /metrics polling, shared
// by bench/at-rest.ts and bench/with-traffic.ts.
import type { Redis } from 'ioredis';

export const WINDOW_S = 15;

export interface Cost {
  cpuMs: number;
  callsPerS: number;
}

export async function cpuUsec(admin: Redis): Promise<number> {
  const info = (await admin.info('cpu')) as string;
  const v = (k: string) => Number(info.match(new RegExp(`^${k}:([\\d.]+)`, 'm'))?.[1] ?? 0);
  return Math.round((v('used_cpu_user') + v('used_cpu_sys')) * 1e6);
}

export async function calls(admin: Redis): Promise<number> {
  const info = (await admin.info('commandstats')) as string;
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) n += Number(m[1]);
  return n;
}

/** Runs `during` for one window and returns the Redis CPU and calls of that window (the admin's own few included). */
export async function window(admin: Redis, during: (endsAt: number) => Promise<void>): Promise<Cost> {
  const endsAt = Date.now() + WINDOW_S * 1000;
  const cpu0 = await cpuUsec(admin);
  const calls0 = await calls(admin);
  await during(endsAt);
  await new Promise((r) => setTimeout(r, Math.max(0, endsAt - Date.now())));
  const cpu1 = await cpuUsec(admin);
  const calls1 = await calls(admin);
  return { cpuMs: (cpu1 - cpu0) / 1000, callsPerS: (calls1 - calls0) / WINDOW_S };
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
