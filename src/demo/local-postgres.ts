// Finds a PostgreSQL for `queuelens demo --backend postgres`: the one at DATABASE_URL if it answers, else a private
// server (initdb into a temporary directory, a free loopback port) when PostgreSQL is installed, else an error that
// says how to get one. postgres refuses to run as root: run as root, the private server runs as the `postgres` user
// (or `nobody`), through spawn()'s uid/gid so that stopping it reaches the postmaster itself. The test helper
// (test/helpers/postgres-server.ts) starts its servers with the same pieces.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { Logger } from '../log/logger.js';
import { safeUrl } from '../log/redact.js';
import { watchChild } from '../util/watch-child.js';
import { demoTempDir } from './demo-tmp.js';
import { freeLoopbackPort } from './local-redis.js';

export class NoPostgresError extends Error {}

export interface LocalPostgres {
  url: string;
  /** True when this process started the server (and stops it on close). */
  private: boolean;
  close(): Promise<void>;
}

const INSTALL_HINT = 'Install it (Debian/Ubuntu: `sudo apt-get install -y postgresql`; macOS: `brew install postgresql`)';

/** The directory of initdb/postgres: PATH first, then Debian's /usr/lib/postgresql/<newest>/bin; undefined if none. */
export function findPostgresBinDir(): string | undefined {
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  const onPath = which.status === 0 ? which.stdout.trim() : '';
  if (onPath) {
    const real = spawnSync('readlink', ['-f', onPath], { encoding: 'utf8' }).stdout.trim() || onPath;
    return real.slice(0, real.lastIndexOf('/'));
  }
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(root, versions[0]!, 'bin') : undefined;
}

/** uid/gid to run the server as: this process when it is not root, else `postgres` or `nobody`. */
export function postgresServerIdentity(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  for (const user of ['postgres', 'nobody']) {
    const id = spawnSync('id', ['-u', user], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', user], { encoding: 'utf8' });
    if (id.status === 0 && gid.status === 0) return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
  }
  throw new Error('running as root and neither a `postgres` nor a `nobody` user exists: postgres refuses to run as root');
}

/** initdb into `<dir>/data` (superuser `postgres`, trust on loopback), as `who`; throws with initdb's own message. */
export function initPostgresDir(bin: string, dir: string, who: { uid: number; gid: number } | undefined): string {
  const data = join(dir, 'data');
  if (who) chownSync(dir, who.uid, who.gid);
  const init = spawnSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'], {
    encoding: 'utf8',
    cwd: dir,
    ...(who ?? {}),
  });
  if (init.status !== 0) throw new Error(`initdb failed (${init.status ?? init.signal}): ${init.stderr || init.error?.message}`);
  return data;
}

/** Starts `postgres` on a data directory, logging to `<dir>/server.log`; the child is in its own process group. */
export function spawnPostgres(
  bin: string,
  dir: string,
  data: string,
  settings: Record<string, string>,
  who: { uid: number; gid: number } | undefined,
): ChildProcess {
  const args = ['-D', data, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  const logFd = openSync(join(dir, 'server.log'), 'a');
  // Own process group: Ctrl-C in the terminal must not stop PostgreSQL before the workers have closed.
  const child = spawn(join(bin, 'postgres'), args, { stdio: ['ignore', logFd, logFd], cwd: dir, detached: true, ...(who ?? {}) });
  closeSync(logFd);
  watchChild(child, dir);
  return child;
}

/** Whether a PostgreSQL answers `SELECT 1` at `url` within `timeoutMs`. */
export async function pingPostgres(url: string, timeoutMs = 1500): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function ensurePostgres(url: string | undefined, log: Logger): Promise<LocalPostgres> {
  if (url && (await pingPostgres(url))) return { url, private: false, close: async () => undefined };
  const nothing = url ? `No PostgreSQL answers at ${safeUrl(url)}` : 'No --database-url (DATABASE_URL) was given';
  const bin = findPostgresBinDir();
  if (!bin)
    throw new NoPostgresError(
      `${nothing} and PostgreSQL is not installed (no initdb).\n${INSTALL_HINT} and run this again,\nor point DATABASE_URL at a running PostgreSQL (e.g. DATABASE_URL=postgres://user:password@host:5432/db).`,
    );
  const who = postgresServerIdentity();
  const port = await freeLoopbackPort();
  const dir = demoTempDir('postgres');
  let child: ChildProcess | undefined;
  try {
    const data = initPostgresDir(bin, dir, who);
    child = spawnPostgres(bin, dir, data, { listen_addresses: '127.0.0.1', port: String(port), unix_socket_directories: dir, fsync: 'off' }, who);
    const privateUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const deadline = Date.now() + 30_000;
    while (!(await pingPostgres(privateUrl, 1000))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`it did not answer on port ${port}: ${tail(join(dir, 'server.log'))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    log.info({ postgres: privateUrl, reason: nothing }, 'started a private PostgreSQL for the demo');
    const server = child;
    return {
      url: privateUrl,
      private: true,
      async close() {
        if (server.exitCode === null && server.signalCode === null) {
          await new Promise<void>((resolve) => {
            server.once('exit', () => resolve());
            // Fast shutdown: clients are disconnected, nothing waits for them.
            server.kill('SIGINT');
          });
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw new NoPostgresError(`${nothing}, and a private PostgreSQL could not be started: ${(err as Error).message}`);
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}
