// Starts a real Redis Cluster (N masters, optional replicas) from redis-server on loopback, for tests.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { watchChild } from '../../src/util/watch-child.js';

export interface TestCluster {
  ports: number[];
  /** `host:port` seeds for --redis-cluster-nodes. */
  nodes: string[];
  client(): Cluster;
  /** The port of the master that serves `key`'s slot now. */
  masterOf(key: string): Promise<number>;
  /** SIGKILLs the node on `port` (no shutdown, no final replication): a crashed host. */
  kill(port: number): Promise<void>;
  /**
   * After the master on `deadPort` was killed: waits until one of its replicas has taken over (ROLE master)
   * and every live node reports cluster_state:ok. Returns the new master's port.
   */
  waitForFailover(deadPort: number, timeoutMs?: number): Promise<number>;
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

/** One command on one node over a throwaway connection; undefined when the node does not answer. */
async function onNode<T>(port: number, run: (c: Redis) => Promise<T>): Promise<T | undefined> {
  const c = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await run(c);
  } catch {
    return undefined;
  } finally {
    c.disconnect();
  }
}

/** A killed process has a signalCode and no exitCode. */
const running = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;

const clusterOk = (port: number) => onNode(port, async (c) => /cluster_state:ok/.test(await c.cluster('INFO')));

export async function startTestCluster(masters = 3, replicasPerMaster = 0): Promise<TestCluster> {
  if (spawnSync('redis-server', ['--version']).error || spawnSync('redis-cli', ['--version']).error) {
    throw new Error('redis-server and redis-cli are needed for cluster tests: apt-get install -y redis-server redis-tools');
  }
  const total = masters * (1 + replicasPerMaster);
  const ports = await freePortRun(total);
  const dir = mkdtempSync(join(tmpdir(), 'queuelens-cluster-'));
  const procs: ChildProcess[] = ports.map((port) => {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--cluster-node-timeout',
        '2000',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    );
    // A test file killed on timeout must not leave its cluster behind.
    watchChild(child, dir);
    return child;
  });
  for (const port of ports) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const c = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      c.on('error', () => undefined);
      const ok = await c
        .connect()
        .then(() => c.ping())
        .then(
          () => true,
          () => false,
        );
      c.disconnect();
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`cluster node ${port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const create = spawnSync(
    'redis-cli',
    ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicasPerMaster), '--cluster-yes'],
    { encoding: 'utf8' },
  );
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
  const deadline = Date.now() + 20_000;
  for (;;) {
    // A replica that never finished its first sync has no data to fail over with: wait for every link too.
    const states = await Promise.all(
      ports.map(async (port) => {
        const repl = await onNode(port, (c) => c.info('replication'));
        return (await clusterOk(port)) && repl !== undefined && (/role:master/.test(repl) || /master_link_status:up/.test(repl));
      }),
    );
    if (states.every(Boolean) && states.length === total) break;
    if (Date.now() > deadline) throw new Error('cluster did not reach cluster_state:ok');
    await new Promise((r) => setTimeout(r, 100));
  }
  const clients: Cluster[] = [];
  const client = (): Cluster => {
    const c = new Cluster(
      ports.map((port) => ({ host: '127.0.0.1', port })),
      { redisOptions: { maxRetriesPerRequest: null } },
    );
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };
  return {
    ports,
    nodes: ports.map((p) => `127.0.0.1:${p}`),
    client,
    async masterOf(key) {
      const c = client();
      const slot = Number(await c.cluster('KEYSLOT', key));
      const shards = (await c.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
      const owner = shards.find(([lo, hi]) => slot >= lo && slot <= hi);
      if (!owner) throw new Error(`no node serves slot ${slot}`);
      return owner[2][1];
    },
    async kill(port) {
      const p = procs[ports.indexOf(port)];
      if (!p || !running(p)) throw new Error(`no running cluster node on port ${port}`);
      const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
      p.kill('SIGKILL');
      await exited;
    },
    async waitForFailover(deadPort, timeoutMs = 20_000) {
      // Replicas name their master's node id, which the dead node no longer answers for: read it off a live one.
      const live = ports.filter((_, i) => running(procs[i]!));
      const nodes = (await onNode(live[0]!, (c) => c.cluster('NODES') as Promise<string>)) ?? '';
      const rows = nodes
        .trim()
        .split('\n')
        .map((l) => l.split(' '));
      const deadId = rows.find((r) => r[1]?.startsWith(`127.0.0.1:${deadPort}@`))?.[0];
      const replicas = rows.filter((r) => r[3] === deadId).map((r) => Number(/:(\d+)@/.exec(r[1]!)![1]));
      if (!deadId || replicas.length === 0) throw new Error(`the node on ${deadPort} has no replica to fail over to`);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        for (const port of replicas) {
          const role = await onNode(port, (c) => c.call('ROLE') as Promise<string[]>);
          if (role?.[0] === 'master' && (await Promise.all(live.map(clusterOk))).every(Boolean)) return port;
        }
        if (Date.now() > deadline) throw new Error(`no replica of ${deadPort} took over within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      for (const c of clients.splice(0)) c.disconnect();
      await Promise.all(
        procs.map(
          (p) =>
            new Promise<void>((resolve) => {
              if (!running(p)) return resolve();
              p.once('exit', () => resolve());
              p.kill('SIGKILL');
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
