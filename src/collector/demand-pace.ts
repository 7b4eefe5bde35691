// Owns how often a busy queue is brought up to date: as often as the sidecar's data is asked for, not more. A queue
// whose events keep moving is re-read (change-plan.ts) and its event accounting committed (events/event-reader.ts)
// once per busy period; the period is half the recent gap between looks at the data (/metrics, /api/queues, the
// status page) at any replica, from minMs (1 s: a fast poller sees a change within about a second) up to maxMs (a
// Prometheus scraping every 15 s gets each busy queue read once or twice between two scrapes). With nobody asking,
// maxMs. Every number stays what Redis held when it was read; only how often a busy queue is read follows demand. A
// queue quiet until now is read at the next pass whatever the period, and the commit rules that keep events from
// being trimmed unread (see event-reader.ts mayDefer) do not wait for it.
// Replicas render the leader's shared snapshot (shared-snapshot.ts), so each one tells the leader how often it is
// asked: one field of one hash under the own prefix (its mean gap and a count of looks), written at most every
// PUBLISH_MS while it is asked; whoever paces reads that hash at most every REFRESH_MS, only while it paces.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

/** The Redis commands the shared part needs (ioredis, standalone or Cluster: one key). */
export interface DemandClient {
  hset(key: string, field: string, value: string): Promise<unknown>;
  pexpire(key: string, ms: number): Promise<unknown>;
  hgetall(key: string): Promise<Record<string, string>>;
  hdel(key: string, ...fields: string[]): Promise<unknown>;
}

export interface DemandPaceOptions {
  /** Shortest busy period (ms). */
  minMs: number;
  /** Longest busy period (ms), also the period while nobody asks. */
  maxMs: number;
  /** The hash shared by the replicas (ownKeys.demand); unset: this process's own requests only. */
  shared?: { client: DemandClient; key: string };
  /** Local clock (ms); tests may drive it. */
  now?: () => number;
}

/** Requests closer together than this are one look (a burst of scrapers, a page loading its parts). */
const LOOK_MS = 250;
/** The gap is the mean of this many gaps between the last looks. */
const GAPS = 2;
/** A replica writes its field at most this often while it is asked, and whoever paces reads the hash this often. */
const PUBLISH_MS = 2000;
const REFRESH_MS = 2000;
/** A replica's field not changed for this long is deleted (a replica gone; one asked writes every PUBLISH_MS). */
const STALE_MS = 60_000;

interface Remote {
  value: string;
  gapMs: number;
  /** Local clock when this value was first seen. */
  seenAt: number;
}

export class DemandPace {
  private readonly now: () => number;
  /** Local clock of the last looks, oldest first (at most GAPS + 1). */
  private looks: number[] = [];
  private lookCount = 0;
  private readonly replica = `${hostname()}:${process.pid}:${randomUUID()}`;
  private publishedAt = -Infinity;
  private published = 0;
  private refreshedAt = -Infinity;
  private refreshing = false;
  private remote = new Map<string, Remote>();

  constructor(private readonly o: DemandPaceOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Someone looked at the data (a request for /metrics, /api/queues, the status page). Cheap: no await. */
  requested(): void {
    const now = this.now();
    const last = this.looks.at(-1);
    if (last !== undefined && now - last < LOOK_MS) return;
    this.looks.push(now);
    if (this.looks.length > GAPS + 1) this.looks.shift();
    this.lookCount += 1;
    this.publish(now);
  }

  /** The period (ms) at which a busy queue is brought up to date now. */
  periodMs(): number {
    const now = this.now();
    this.refresh(now);
    let gap = this.localGap(now);
    for (const r of this.remote.values()) {
      // Its looks reach us up to PUBLISH_MS + REFRESH_MS late: only a longer silence tells that they stopped.
      gap = Math.min(gap, Math.max(r.gapMs, now - r.seenAt - PUBLISH_MS - REFRESH_MS));
    }
    return Math.min(this.o.maxMs, Math.max(this.o.minMs, gap / 2));
  }

  /** The gap between this process's looks: the mean of the last GAPS, or the time since the last look if longer. */
  private localGap(now: number): number {
    const n = this.looks.length;
    if (n < 2) return Infinity;
    const mean = ((this.looks[n - 1] as number) - (this.looks[0] as number)) / (n - 1);
    return Math.max(mean, now - (this.looks[n - 1] as number));
  }

  private publish(now: number): void {
    const shared = this.o.shared;
    if (!shared || now - this.publishedAt < PUBLISH_MS || this.lookCount === this.published) return;
    const gap = this.localGap(now);
    if (!Number.isFinite(gap)) return;
    this.publishedAt = now;
    this.published = this.lookCount;
    const { client, key } = shared;
    // Best effort: without it the leader paces by its own requests only.
    void client
      .hset(key, this.replica, `${Math.round(gap)}:${this.lookCount}`)
      .then(() => client.pexpire(key, STALE_MS))
      .catch(() => undefined);
  }

  private refresh(now: number): void {
    const shared = this.o.shared;
    if (!shared || this.refreshing || now - this.refreshedAt < REFRESH_MS) return;
    this.refreshedAt = now;
    this.refreshing = true;
    const { client, key } = shared;
    void client
      .hgetall(key)
      .then((fields) => {
        const at = this.now();
        const next = new Map<string, Remote>();
        const stale: string[] = [];
        for (const [field, value] of Object.entries(fields)) {
          if (field === this.replica) continue;
          const before = this.remote.get(field);
          const seenAt = before && before.value === value ? before.seenAt : at;
          if (at - seenAt > STALE_MS) stale.push(field);
          else next.set(field, { value, seenAt, gapMs: Number(value.split(':')[0]) || Infinity });
        }
        this.remote = next;
        if (stale.length > 0) return client.hdel(key, ...stale);
        return undefined;
      })
      .catch(() => undefined)
      .finally(() => {
        this.refreshing = false;
      });
  }
}
