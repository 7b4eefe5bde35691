// One private PostgreSQL per suite, BullMQ's schema migrated on it, BullMQ fixtures and in-process
// `sidecar --backend postgres` instances on it, all closed after the suite (registers its own beforeAll/afterAll).
import { afterAll, beforeAll } from 'vitest';
import { PostgresBullFixtures } from './postgres-bullmq.js';
import { startTestPostgres, type TestPostgres } from './postgres-server.js';
import { seriesKey, type Series } from './prom-text.js';
import { testPostgresSidecar } from './sidecar.js';

export type TestPostgresSidecar = Awaited<ReturnType<typeof testPostgresSidecar>>;

export interface PostgresSuite {
  readonly server: TestPostgres;
  readonly bull: PostgresBullFixtures;
  /** A sidecar on this server (or on `url`), closed after the suite if the test did not. */
  sidecar(raw?: Record<string, unknown>, logTo?: string[], url?: string): Promise<TestPostgresSidecar>;
}

export function usePostgresSuite(): PostgresSuite {
  const sidecars: TestPostgresSidecar[] = [];
  let server: TestPostgres | undefined;
  let bull: PostgresBullFixtures | undefined;
  beforeAll(async () => {
    server = await startTestPostgres();
    bull = new PostgresBullFixtures(server);
    await bull.migrate();
  });
  afterAll(async () => {
    for (const s of sidecars.splice(0)) await s.close().catch(() => undefined);
    await bull?.close();
    await server?.stop();
  });
  return {
    get server() {
      if (!server) throw new Error('the suite’s PostgreSQL is not started (use it inside a test or a later hook)');
      return server;
    },
    get bull() {
      if (!bull) throw new Error('the suite’s PostgreSQL is not started (use it inside a test or a later hook)');
      return bull;
    },
    async sidecar(raw = {}, logTo, url) {
      const s = await testPostgresSidecar(url ?? server!.url, raw, logTo);
      sidecars.push(s);
      return s;
    },
  };
}

/** One collection more, then /metrics. */
export async function freshMetrics(s: TestPostgresSidecar): Promise<Series> {
  await s.refresh();
  return s.scrape();
}

const EVENT_COUNTERS = {
  added: 'bullmq_jobs_added_total',
  completed: 'bullmq_jobs_completed_total',
  failed: 'bullmq_jobs_failed_total',
  retried: 'bullmq_jobs_retried_total',
  stalled: 'bullmq_jobs_stalled_total',
  deduplicated: 'bullmq_jobs_deduplicated_total',
  read: 'bullmq_exporter_events_read_total',
  lost: 'bullmq_exporter_events_lost_total',
} as const;
export type EventCounter = keyof typeof EVENT_COUNTERS;

/** The named event counters of one queue of schema `bullmq` in a scrape (undefined where a series is absent). */
export function eventCounters<K extends EventCounter>(m: Series, queue: string, names: readonly K[]): Record<K, number | undefined> {
  return Object.fromEntries(names.map((n) => [n, m.get(seriesKey(EVENT_COUNTERS[n], { prefix: 'bullmq', queue }))])) as Record<K, number | undefined>;
}
