// Owns how often a busy queue is brought up to date: as often as the sidecar's data is asked for, not more. A queue
// whose events keep moving is re-read (change-plan.ts) and its event accounting committed (events/event-reader.ts)
// once per busy period. While the looks at the data (/metrics, /api/queues, the status page) at any replica recur at
// a steady period longer than 2 × LEAD_MS (Prometheus every 15 s; an HA pair at two phases; up to three), each busy
// queue is brought up to date once per predicted look, LEAD_MS before it, so a scrape sees data about LEAD_MS old at
// one refresh per look, at most 2 × maxMs apart. Otherwise (looks irregular, more frequent, or late by more than half
// their period) the period is half the recent gap between looks, from minMs (1 s: a fast poller sees a change within
// about a second) up to maxMs; with nobody asking, maxMs. Every number stays what Redis held when it was read; only
// how often a busy queue is read follows demand. A queue quiet until now is read at the next pass whatever the
// period, and the commit rules that keep events from being trimmed unread (see event-reader.ts mayDefer) do not
// wait for it.
// Replicas render the leader's shared snapshot (shared-snapshot.ts), so each one tells the leader how it is asked:
// one field of one hash under the own prefix (its mean gap, a count of looks and, while they recur, their period
// and its last looks), written at most every PUBLISH_MS while it is asked; whoever paces reads that hash at most
// every REFRESH_MS, only while it paces.
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
/** Without a steady period, the gap is the mean of this many gaps between the last looks. */
const GAPS = 2;
/** Looks kept: enough to find the period of up to MAX_PHASES scrapers at different phases (an HA Prometheus pair). */
const HISTORY = 6;
const MAX_PHASES = 3;
/**
 * Differences between looks m apart within this share of their mean, and within TOLERANCE_MS of it: the looks recur
 * at that period. A look that strays further from the period can arrive before the refresh timed for it (LEAD_MS
 * less the reader round and collection it takes) and find data a whole period old: one scrape 1.5 s late, or gaps
 * alternating 13.5 and 16.5 s, left the next look with a busy queue read 13.5 s before it
 * (test/adversary-s24-pace.test.ts); random gaps of 2-22 s fitted three phases 35 s apart within 20%. TOLERANCE_MS
 * leaves room for the sidecar's own event-loop delay (up to a few hundred ms at 10,000 queues) in when a look is seen.
 */
const TOLERANCE = 0.2;
const TOLERANCE_MS = 500;
/**
 * A busy queue is brought up to date this long before a predicted look: a reader round (0.5 s), its commit, the
 * prompt collection that follows (0.5 s apart) and the collection itself, with margin. Looks recurring more often
 * than twice this keep the half-gap rule.
 */
export const LEAD_MS = 2000;
/** A replica writes its field at most this often while it is asked, and whoever paces reads the hash this often. */
const PUBLISH_MS = 2000;
const REFRESH_MS = 2000;
/** A replica's field not changed for this long is deleted (a replica gone; one asked writes every PUBLISH_MS). */
const STALE_MS = 60_000;

/**
 * A look that came more than this before the earliest predicted one found the refresh timed for it not yet made
 * (reads are made LEAD_MS before, and seen by a scrape about a second later): the data it found was up to a period old.
 */
const EARLY_MS = LEAD_MS / 2;

/**
 * Looks that recur: every `periodMs`, the last ones at `looks` (the clock of whoever looked, oldest first); `shaky`:
 * fitted from the last two gaps only, or one of the last HISTORY looks came more than EARLY_MS before the look
 * predicted then (a jittery scraper, a stray look, a shorter period), so a busy queue is also read at least every
 * maxMs, as by the half-gap rule.
 */
interface Recurring {
  periodMs: number;
  looks: number[];
  shaky?: boolean;
}

interface Remote {
  value: string;
  gapMs: number;
  recurring: Recurring | undefined;
  /** Local clock when this value was first seen. */
  seenAt: number;
}

/** What one source of looks asks for: the age at which a busy queue is due now, and the time to its next refresh. */
interface Pace {
  dueMs: number;
  spacingMs: number;
  /** Timed before predicted looks (else half the gap). */
  recurs: boolean;
}

export class DemandPace {
  private readonly now: () => number;
  /** Local clock of the last looks, oldest first (at most HISTORY). */
  private looks: number[] = [];
  private lookCount = 0;
  /** lookCount of the last look that came more than EARLY_MS before the earliest predicted one (-Infinity: none). */
  private earlyLook = -Infinity;
  private readonly replica = `${hostname()}:${process.pid}:${randomUUID()}`;
  private publishedAt = -Infinity;
  private published = 0;
  private refreshedAt = -Infinity;
  private refreshing = false;
  private remote = new Map<string, Remote>();
  /** Longest due age while looks recur: 2 × maxMs (15 s by default; the lagging alert needs 30 s), minMs if maxMs is. */
  private readonly recurringMaxMs: number;

  constructor(private readonly o: DemandPaceOptions) {
    this.now = o.now ?? Date.now;
    this.recurringMaxMs = o.maxMs <= o.minMs ? o.minMs : 2 * o.maxMs;
  }

  /** Someone looked at the data (a request for /metrics, /api/queues, the status page). Cheap: no await. */
  requested(): void {
    const now = this.now();
    const last = this.looks.at(-1);
    if (last !== undefined && now - last < LOOK_MS) return;
    const r = recurring(this.looks);
    if (r && now < Math.min(...r.looks) + r.periodMs - EARLY_MS) this.earlyLook = this.lookCount + 1;
    this.looks.push(now);
    if (this.looks.length > HISTORY) this.looks.shift();
    this.lookCount += 1;
    this.publish(now);
  }

  /**
   * The age (ms) at which a busy queue is due to be brought up to date now: read, committed, its stream read, if it
   * was last brought up to date longer ago than this. While looks recur at a steady period (Prometheus: 15 s), that
   * is the time since the last refresh point, LEAD_MS before each predicted look (a queue brought up to date since
   * is not due again before the next one): once per look, the data about LEAD_MS old when it is looked at. Else half
   * the recent gap between looks, from minMs to maxMs.
   */
  periodMs(): number {
    return this.pace().dueMs;
  }

  /** About how long (ms) from now until a busy queue brought up to date now is due again (at least periodMs()). */
  spacingMs(): number {
    const p: Omit<Pace, 'recurs'> = this.pace();
    return Math.max(p.dueMs, p.spacingMs);
  }

  private pace(): Omit<Pace, 'recurs'> {
    const now = this.now();
    this.refresh(now);
    const paces: Pace[] = [this.sourcePace(now, this.localGap(now), this.recurring())];
    for (const r of this.remote.values()) {
      // Its looks reach us up to PUBLISH_MS + REFRESH_MS late: only a longer silence tells that they stopped.
      paces.push(this.sourcePace(now, Math.max(r.gapMs, now - r.seenAt - PUBLISH_MS - REFRESH_MS), r.recurring));
    }
    // At most maxMs apart, or 2 × maxMs while some looks recur (each refreshed for; minMs if maxMs is).
    const cap = paces.some((p) => p.recurs) ? this.recurringMaxMs : Math.max(this.o.minMs, this.o.maxMs);
    return { dueMs: Math.min(cap, ...paces.map((p) => p.dueMs)), spacingMs: Math.min(cap, ...paces.map((p) => p.spacingMs)) };
  }

  /** One source of looks: before each of its predicted looks while they recur, else half its gap. */
  private sourcePace(now: number, gapMs: number, r: Recurring | undefined): Pace {
    const { minMs, maxMs } = this.o;
    const half = Math.max(minMs, gapMs / 2);
    const halfGap = { dueMs: half, spacingMs: half, recurs: false };
    if (!r || r.periodMs <= 2 * LEAD_MS || maxMs <= minMs) return halfGap;
    const next = r.looks.map((l) => l + r.periodMs);
    // A look more than half a period late: they stopped or changed; the time since the last one stands for the gap.
    if (now > Math.min(...next) + r.periodMs / 2) return halfGap;
    // Refresh points: before each of the last looks (the refresh that served it) and each predicted one; one within
    // LEAD_MS after another is served by it.
    const points: number[] = [];
    for (const p of [...r.looks, ...next].map((l) => l - LEAD_MS).sort((a, b) => a - b)) {
      const kept = points.at(-1);
      if (kept === undefined || p - kept >= LEAD_MS) points.push(p);
    }
    const due = points.filter((p) => p <= now).at(-1) ?? (points[0] as number);
    const following = points.find((p) => p > now) ?? due + r.periodMs;
    // Not raised to minMs: a queue read since the refresh point is not due again before the next one, and one read
    // before it is (if that was less than minMs earlier, the next look still finds it at most LEAD_MS + minMs old).
    // (+1: a queue read at the refresh point itself counts as read since.) Shaky: also at least every maxMs, so a look
    // that comes before its refresh finds data at most about maxMs old, not a period (a scraper with ±2.5 s jitter
    // found it 13-16 s old).
    const cap = r.shaky ? maxMs : Infinity;
    return { dueMs: Math.min(cap, now - due + 1), spacingMs: Math.min(cap, Math.max(minMs, following - due)), recurs: true };
  }

  /** Whether this process's looks recur, and whether one came early lately (shaky). */
  private recurring(): Recurring | undefined {
    const r = recurring(this.looks);
    return r && this.lookCount - this.earlyLook < HISTORY ? { ...r, shaky: true } : r;
  }

  /** The gap between this process's looks: the mean of the last GAPS, or the time since the last look if longer. */
  private localGap(now: number): number {
    const looks = this.looks.slice(-(GAPS + 1));
    const n = looks.length;
    if (n < 2) return Infinity;
    const mean = ((looks[n - 1] as number) - (looks[0] as number)) / (n - 1);
    return Math.max(mean, now - (looks[n - 1] as number));
  }

  private publish(now: number): void {
    const shared = this.o.shared;
    if (!shared || now - this.publishedAt < PUBLISH_MS || this.lookCount === this.published) return;
    const gap = this.localGap(now);
    if (!Number.isFinite(gap)) return;
    this.publishedAt = now;
    this.published = this.lookCount;
    const { client, key } = shared;
    // `gap:count`, then while the looks recur `:period:look,look…[:shaky]` (this clock; replicas' clocks agree to NTP's skew,
    // which LEAD_MS's margin absorbs). Best effort: without it the leader paces by its own requests only.
    const r = this.recurring();
    const tail = r && r.periodMs > 2 * LEAD_MS ? `:${Math.round(r.periodMs)}:${r.looks.map((l) => Math.round(l)).join(',')}${r.shaky ? ':shaky' : ''}` : '';
    void client
      .hset(key, this.replica, `${Math.round(gap)}:${this.lookCount}${tail}`)
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
          else next.set(field, { value, seenAt, ...parseRemote(value) });
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

/**
 * Whether the looks recur: a number of phases m (one scraper, an HA pair, three) such that the looks m apart are a
 * steady period apart (each difference within TOLERANCE of their mean and TOLERANCE_MS); then the period and the last
 * m looks. First from every kept look, the best fit: the smallest m unless a larger one fits less than half as far off
 * (FIT_MARGIN). Three Prometheus every 15 s at phases 0/4/9 s make gaps 4, 5, 6 s, whose last two (4 and 4.5 s, 5 and
 * 6 s) fitted one phase every 4.5 or 5.5 s, and two of every three scrapes found data 3.5-4 s old; at phases 0/3/6 s
 * every 10 s two phases fitted within 500 ms (every 6.5 s), three exactly. A 15 s scraper that missed one look in
 * four (0, 15, 30, 60, 75, 90) is three phases every 60 s, which it is. Failing that, one phase from the last two
 * differences (shaky), so that a stray look (a curl) or a scraper's new period delays the fit by two looks only, not
 * until it leaves the kept looks.
 */
function recurring(looks: readonly number[]): Recurring | undefined {
  const n = looks.length;
  let best: { offMs: number; fit: Recurring } | undefined;
  for (let m = 1; m <= MAX_PHASES && n >= m + 2; m += 1) {
    const fit = steady(looks, m, n - m);
    if (fit && (!best || fit.offMs * FIT_MARGIN < best.offMs)) best = fit;
  }
  return best?.fit ?? lastTwo(looks);
}

/** A larger number of phases is preferred to a smaller one that fits only if its looks are more than this many times closer. */
const FIT_MARGIN = 2;

/** Whether the last k differences between looks m apart are steady: their mean, and the largest distance from it. */
function steady(looks: readonly number[], m: number, k: number): { offMs: number; fit: Recurring } | undefined {
  const n = looks.length;
  if (k < 1 || n < m + k) return undefined;
  const diffs: number[] = [];
  for (let i = n - k; i < n; i += 1) diffs.push((looks[i] as number) - (looks[i - m] as number));
  const mean = diffs.reduce((a, b) => a + b, 0) / k;
  const offMs = Math.max(...diffs.map((d) => Math.abs(d - mean)));
  if (offMs > Math.min(TOLERANCE * mean, TOLERANCE_MS)) return undefined;
  return { offMs, fit: { periodMs: mean, looks: looks.slice(n - m) } };
}

/** One phase from the last two differences (a stray look or a new period behind them): shaky. */
function lastTwo(looks: readonly number[]): Recurring | undefined {
  const fit = steady(looks, 1, 2)?.fit;
  return fit && { ...fit, shaky: true };
}

/** A replica's field: `gap:count[:period:look,look…[:shaky]]`. */
function parseRemote(value: string): { gapMs: number; recurring: Recurring | undefined } {
  const [gap, , period, looks, shaky] = value.split(':');
  const gapMs = Number(gap) || Infinity;
  const periodMs = Number(period);
  const at = (looks ?? '').split(',').map(Number).filter(Number.isFinite);
  return { gapMs, recurring: periodMs > 0 && at.length > 0 && looks ? { periodMs, looks: at, shaky: shaky === 'shaky' } : undefined };
}
