// Starts a private PostgreSQL (initdb into a temporary directory, a free loopback port), so a test can stop, kill and
// restart it. It never touches a PostgreSQL it did not start.
//
// postgres refuses to run as root. Run as root (as CI does), the server runs as the `postgres` user when one exists,
// else as `nobody`: Node's spawn() takes uid/gid, so no runuser/su sits between the test and the postmaster (a kill
// reaches the postmaster itself). kill() SIGKILLs the postmaster and its backends and waits for them, so a restart on
// the same directory is not refused for shared memory still in use.
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { findPostgresBinDir, initPostgresDir, postgresServerIdentity, spawnPostgres } from '../../src/demo/local-postgres.js';
import { freePort } from './redis-server.js';

export interface TestPostgres {
  port: number;
  /** The temporary directory (data directory and socket); removed by stop(). */
  dir: string;
  /** Superuser `postgres`, no password (trust on loopback), database `postgres`. */
  url: string;
  /** A connection string for another role or database on this server. */
  urlFor(opts: { user?: string; password?: string; database?: string }): string;
  /** A fresh pool; closed by stop(). */
  pool(max?: number): pg.Pool;
  /** SIGKILL the postmaster and its backends (crash recovery runs on restart). */
  kill(): Promise<void>;
  /** Start the server again on the same port and directory. */
  restart(): Promise<void>;
  /** Fast shutdown (SIGINT): open transactions are rolled back, clients are disconnected. */
  shutdown(): Promise<void>;
  /** SIGSTOP the postmaster and its backends (a hung server: sockets open, nothing answers); returns the SIGCONT. */
  freeze(): () => void;
  stop(): Promise<void>;
}

export interface TestPostgresOptions {
  /** Extra server settings, e.g. { max_connections: '200' }. */
  settings?: Record<string, string>;
}

/** The directory of initdb/postgres: PATH first, then Debian's /usr/lib/postgresql/<newest>/bin. */
export function postgresBinDir(): string {
  const dir = findPostgresBinDir();
  if (dir) return dir;
  throw new Error(
    'PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin). The tests start their own server: install it with `apt-get install -y postgresql` (Debian/Ubuntu) and run the tests again.',
  );
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 of /proc/<pid>/stat is the parent pid; the command name (field 2) may hold spaces, so count from ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}

export async function startTestPostgres(opts: TestPostgresOptions = {}): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const who = postgresServerIdentity();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'queuelens-pg-'));
  let data: string;
  try {
    data = initPostgresDir(bin, dir, who);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const pools: pg.Pool[] = [];
  let proc: ChildProcess | undefined;
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const urlFor = (o: { user?: string; password?: string; database?: string }): string => {
    const auth = `${encodeURIComponent(o.user ?? 'postgres')}${o.password !== undefined ? `:${encodeURIComponent(o.password)}` : ''}`;
    return `postgres://${auth}@127.0.0.1:${port}/${encodeURIComponent(o.database ?? 'postgres')}`;
  };

  const launch = async (): Promise<void> => {
    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      port: String(port),
      unix_socket_directories: dir,
      fsync: 'off',
      full_page_writes: 'off',
      max_connections: '100',
      ...opts.settings,
    };
    // Watched: a test file killed on timeout must not leave its server behind.
    const child = spawnPostgres(bin, dir, data, settings, who);
    proc = child;
    let exited = false;
    child.once('exit', () => (exited = true));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        await probe.query('SELECT 1');
        await probe.end();
        return;
      } catch {
        await probe.end().catch(() => undefined);
        if (exited) throw new Error(`postgres exited with code ${child.exitCode ?? child.signalCode} on port ${port}: ${tail(join(dir, 'server.log'))}`);
        if (Date.now() > deadline) throw new Error(`postgres did not answer on port ${port} within 30 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  const terminate = async (signal: NodeJS.Signals, withBackends: boolean): Promise<void> => {
    const child = proc;
    proc = undefined;
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    // Each backend calls setsid(), so the postmaster's process group does not hold them: they are found by parent.
    const backends = withBackends ? childrenOf(child.pid) : [];
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
      for (const pid of backends) killQuietly(pid, signal);
    });
    // A restart is refused while a backend of the old server still holds its shared memory.
    const deadline = Date.now() + 10_000;
    while (backends.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  };

  await launch();
  return {
    port,
    dir,
    url,
    urlFor,
    pool(max = 10) {
      const p = new pg.Pool({ connectionString: url, max });
      p.on('error', () => undefined);
      pools.push(p);
      return p;
    },
    kill: () => terminate('SIGKILL', true),
    restart: launch,
    shutdown: () => terminate('SIGINT', false),
    freeze() {
      const pid = proc?.pid;
      if (pid === undefined) throw new Error('postgres is not running');
      const pids = [pid, ...childrenOf(pid)];
      for (const p of pids) killQuietly(p, 'SIGSTOP');
      return () => {
        for (const p of pids) killQuietly(p, 'SIGCONT');
      };
    },
    async stop() {
      for (const p of pools.splice(0)) await p.end().catch(() => undefined);
      await terminate('SIGINT', false);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
