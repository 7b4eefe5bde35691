// Real `queuelens sidecar` processes for process-level tests: start with short intervals, scrape /metrics,
// read peak RSS from /proc, and wait until a stream is fully accounted for (read + lost = entries added).
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { queueKey } from '../../src/redis/keys.js';
import { type QueueRef } from '../../src/domain/queue-ref.js';
import { waitFor } from './bullmq.js';
import { spawnCli, type CliProcess } from './cli.js';
import { parsePromText, seriesKey, type Series } from './prom-text.js';
import { freePort } from './redis-server.js';

export interface SidecarProcess {
  cli: CliProcess;
  port: number;
  metrics(): Promise<Series>;
  /** Peak resident set size so far (VmHWM), bytes. */
  peakRss(): number;
  alive(): boolean;
  stop(): Promise<void>;
}

export interface SidecarProcessOptions {
  redisUrl: string;
  ownPrefix: string;
  /** Queues to follow; without, the sidecar discovers them (every 0.5 s). */
  queues?: string;
  leaseSeconds?: number;
  extraArgs?: string[];
}

export async function startSidecarProcess(o: SidecarProcessOptions): Promise<SidecarProcess> {
  const port = await freePort();
  const args = ['sidecar', '--port', String(port), '--host', '127.0.0.1', '--collect-interval', '0.2', '--own-prefix', o.ownPrefix];
  args.push(...(o.queues !== undefined ? ['--queues', o.queues] : ['--discovery-interval', '0.5']));
  const cli = spawnCli([...args, '--events-lease', String(o.leaseSeconds ?? 3), ...(o.extraArgs ?? [])], { REDIS_URL: o.redisUrl, LOG_LEVEL: 'warn' });
  const alive = () => cli.proc.exitCode === null && cli.proc.signalCode === null;
  const metrics = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
    return parsePromText(await res.text());
  };
  await waitFor('sidecar serving', () => metrics().catch(() => undefined), 15_000);
  return {
    cli,
    port,
    metrics,
    alive,
    peakRss() {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${cli.proc.pid}/status`, 'utf8'));
      return Number(m?.[1]) * 1024;
    },
    /** SIGTERM (the lease is released), SIGKILL if it has not exited within 5 s. */
    async stop() {
      if (!alive()) return;
      cli.proc.kill('SIGCONT');
      cli.proc.kill('SIGTERM');
      const timer = setTimeout(() => cli.proc.kill('SIGKILL'), 5000);
      await cli.exited;
      clearTimeout(timer);
    },
  };
}

export const queueLabels = (q: QueueRef) => ({ prefix: q.prefix, queue: q.name });

export function metric(m: Series, name: string, q: QueueRef, extra: Record<string, string> = {}): number {
  return m.get(seriesKey(name, { ...queueLabels(q), ...extra })) ?? 0;
}

/** Redis's own count of entries ever added to the queue's events stream. */
export async function entriesAdded(raw: Redis, q: QueueRef): Promise<number> {
  const info = (await raw.call('XINFO', 'STREAM', queueKey(q, 'events'))) as unknown[];
  return Number(info[info.indexOf('entries-added') + 1]);
}

/**
 * The sidecar's metrics once it has read (or counted lost) every entry of the stream. Only for streams the
 * sidecar's own prefix has followed from their first entry (a stream first seen with history starts at its end).
 */
export async function caughtUp(s: SidecarProcess, raw: Redis, q: QueueRef, timeoutMs = 20_000): Promise<Series> {
  return waitFor(
    `the sidecar to account for the whole ${q.name} stream`,
    async () => {
      const m = await s.metrics();
      const read = metric(m, 'bullmq_exporter_events_read_total', q);
      const lost = metric(m, 'bullmq_exporter_events_lost_total', q);
      return read + lost === (await entriesAdded(raw, q)) && m;
    },
    timeoutMs,
    100,
  );
}
