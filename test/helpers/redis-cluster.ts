// Starts a real Redis Cluster (N masters, optional replicas) from redis-server on loopback, for tests.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';

export interface TestCluster {
  ports: number[];
  /** `host:port` seeds for --redis-cluster-nodes. */
  nodes: string[];
  client(): Cluster;
  stop(): Promise<void>;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A run of `count` consecutive ports whose cluster bus ports (+10000) are free too. */
async function freePortRun(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const start = 20_000 + Math.floor(Math.random() * 20_000);
    const ports = Array.from({ length: count }, (_, i) => start + i);
    const checks = await Promise.all(ports.flatMap((p) => [portFree(p), portFree(p + 10_000)]));
    if (checks.every(Boolean)) return ports;
  }
  throw new Error('no free port range for a test cluster');
}

export async function startTestCluster(masters = 3, replicasPerMaster = 0): Promise<TestCluster> {
  if (spawnSync('redis-server', ['--version']).error || spawnSync('redis-cli', ['--version']).error) {
    throw new Error('redis-server and redis-cli are needed for cluster tests: apt-get install -y redis-server redis-tools');
  }
  const total = masters * (1 + replicasPerMaster);
  const ports = await freePortRun(total);
  const dir = mkdtempSync(join(tmpdir(), 'queuelens-cluster-'));
  const procs: ChildProcess[] = ports.map((port) =>
    spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000', '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: 'ignore' },
    ),
  );
  for (const port of ports) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const c = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      c.on('error', () => undefined);
      const ok = await c.connect().then(() => c.ping()).then(() => true, () => false);
      c.disconnect();
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`cluster node ${port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicasPerMaster), '--cluster-yes'], { encoding: 'utf8' });
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const states = await Promise.all(
      ports.map(async (port) => {
        const c = new Redis({ port, lazyConnect: true });
        c.on('error', () => undefined);
        try {
          await c.connect();
          return /cluster_state:ok/.test(await c.cluster('INFO'));
        } catch {
          return false;
        } finally {
          c.disconnect();
        }
      }),
    );
    if (states.every(Boolean)) break;
    if (Date.now() > deadline) throw new Error('cluster did not reach cluster_state:ok');
    await new Promise((r) => setTimeout(r, 100));
  }
  const clients: Cluster[] = [];
  return {
    ports,
    nodes: ports.map((p) => `127.0.0.1:${p}`),
    client() {
      const c = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })), { redisOptions: { maxRetriesPerRequest: null } });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients.splice(0)) c.disconnect();
      await Promise.all(
        procs.map(
          (p) =>
            new Promise<void>((resolve) => {
              if (p.exitCode !== null) return resolve();
              p.once('exit', () => resolve());
              p.kill('SIGKILL');
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
