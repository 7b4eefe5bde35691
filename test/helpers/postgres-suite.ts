// One private PostgreSQL per suite, BullMQ's schema migrated on it, BullMQ fixtures and in-process
// `sidecar --backend postgres` instances on it, all closed after the suite (registers its own beforeAll/afterAll).
import { afterAll, beforeAll } from 'vitest';
import { PostgresBullFixtures } from './postgres-bullmq.js';
import { startTestPostgres, type TestPostgres } from './postgres-server.js';
import type { Series } from './prom-text.js';
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
