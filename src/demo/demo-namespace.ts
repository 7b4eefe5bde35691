// Owns where the demo writes in a Redis that may be a developer's own: BullMQ queues under the `queuelens-demo`
// prefix and queuelens's state under `queuelens-demo-sidecar`, so the demo's email/webhook/export never mix with
// queues of the same name under `bull`. One demo at a time per Redis (a claim with a TTL, taken over at once when
// its holder died on this host), so the keys a crashed earlier run left behind can be removed at start, and the
// demo's keys are removed on exit unless --keep.
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { processAlive } from '../util/pid.js';
import { ownKeys } from '../redis/keys.js';

export const DEMO_PREFIX = 'queuelens-demo';
export const DEMO_OWN_PREFIX = 'queuelens-demo-sidecar';

const CLAIM_MS = 30_000;
const SCAN_COUNT = 1000;

export class DemoBusyError extends Error {}

export interface DemoNamespace {
  /** Keys of an earlier run (one that was killed) removed at start. */
  staleRemoved: number;
  /** Removes every key of the demo (and the claim); returns how many. */
  removeKeys(): Promise<number>;
  /** Lets go of the claim, keeping the keys. */
  release(): Promise<void>;
}

/** Every key under the demo's two prefixes except the claim, found with SCAN (never KEYS) and removed with UNLINK. */
async function removeDemoKeys(redis: Redis, keepClaim: boolean): Promise<number> {
  const claim = ownKeys.demoRunning(DEMO_OWN_PREFIX);
  let removed = 0;
  for (const prefix of [DEMO_PREFIX, DEMO_OWN_PREFIX]) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', SCAN_COUNT);
      cursor = next;
      const doomed = keepClaim ? keys.filter((k) => k !== claim) : keys;
      if (doomed.length > 0) removed += await redis.unlink(...doomed);
    } while (cursor !== '0');
  }
  return removed;
}

/** Who holds the claim: `<host>/<pid>/<since ms>`, so a later start on the same host can tell its holder died. */
function claimToken(): string {
  return `${hostname()}/${process.pid}/${Date.now()}`;
}

/**
 * Takes over a claim whose holder was a process on this host that no longer lives (a demo killed with SIGKILL
 * or a crash), instead of making the user wait for it to lapse. WATCH makes the takeover atomic: if the claim
 * changed meanwhile (renewed, lapsed, taken by another start), nothing is written and the caller reports it busy.
 */
async function takeOverFromDead(redis: Redis, claim: string, token: string): Promise<boolean> {
  await redis.watch(claim);
  const held = await redis.get(claim);
  if (held === null) {
    // Lapsed just now: claim it as a first start would.
    await redis.unwatch();
    return (await redis.set(claim, token, 'PX', CLAIM_MS, 'NX')) === 'OK';
  }
  const [host, pid] = held.split('/');
  const ownerPid = Number(pid);
  if (host !== hostname() || !Number.isSafeInteger(ownerPid) || ownerPid <= 0 || ownerPid === process.pid || processAlive(ownerPid)) {
    await redis.unwatch();
    return false;
  }
  return (await redis.multi().set(claim, token, 'PX', CLAIM_MS).exec()) !== null;
}

/** Claims the demo namespace of the Redis at `url`; throws DemoBusyError when another demo holds it. */
export async function claimDemoNamespace(url: string): Promise<DemoNamespace> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true, connectionName: 'queuelens:demo' });
  redis.on('error', () => undefined);
  await redis.connect();
  const claim = ownKeys.demoRunning(DEMO_OWN_PREFIX);
  const token = claimToken();
  if ((await redis.set(claim, token, 'PX', CLAIM_MS, 'NX')) !== 'OK' && !(await takeOverFromDead(redis, claim, token))) {
    const ttl = await redis.pttl(claim).catch(() => -2);
    redis.disconnect();
    const wait = ttl > 0 ? `; if it was killed, its claim lapses in ${Math.ceil(ttl / 1000)} s and the next start cleans up` : '';
    throw new DemoBusyError(
      `another queuelens demo is running against this Redis (it holds ${claim}${wait}); stop it first, or give this one another Redis with --redis-url`,
    );
  }
  // Renewed while this process lives; a demo killed with SIGKILL lets it lapse (or a start on this host takes it
  // over at once), and the next start cleans up.
  const renew = setInterval(() => void redis.pexpire(claim, CLAIM_MS).catch(() => undefined), CLAIM_MS / 3);
  renew.unref();
  const staleRemoved = await removeDemoKeys(redis, true);
  const done = async (remove: boolean) => {
    clearInterval(renew);
    const n = remove ? await removeDemoKeys(redis, false) : 0;
    if (!remove) await redis.del(claim);
    redis.disconnect();
    return n;
  };
  return { staleRemoved, removeKeys: () => done(true), release: async () => void (await done(false)) };
}
