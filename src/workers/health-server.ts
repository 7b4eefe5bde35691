// The workers' health port for Kubernetes probes (`--health-port`). /livez answers 200 while every processing
// loop runs: a blocked event loop does not answer at all, a loop that stopped answers 503, and either way the
// kubelet restarts the pod. /readyz also needs every worker's Redis connection ready and answering a PING within
// PING_DEADLINE_MS (a hung Redis keeps connections open; with --backend postgres, the database answering a SELECT 1,
// reported under the same `redis` key): a worker that cannot reach its store takes no jobs, and a
// rollout should wait for it. Plain node:http, so workers load no web framework.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RunningWorkers } from './start-workers.js';

/** /readyz's PING deadline: the answer comes within the kubelet's default probe timeout (1 s). */
const PING_DEADLINE_MS = 800;

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

export async function startHealthServer(workers: Pick<RunningWorkers, 'health' | 'readiness'>, opts: { host: string; port: number }): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || (path !== '/livez' && path !== '/readyz')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
      return;
    }
    void (path === '/livez' ? Promise.resolve(workers.health()) : workers.readiness(PING_DEADLINE_MS)).then((queues) => {
      const ok = queues.every((q) => q.running && (path === '/livez' || q.redis));
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify({ ok, queues }));
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, resolve);
  });
  let closed: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      return closed;
    },
  };
}
