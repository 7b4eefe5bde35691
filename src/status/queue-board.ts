// Owns what the status page, the JSON API and `queuelens top` show: the last collection per queue joined with
// a bounded history of its accounting (one AccountingRing per queue), turned into QueueView rows with rates,
// latency quantiles over the last 1 and 15 minutes, and a health verdict. Plain data in, plain data out.
import { isStale, staleLimitSeconds } from '../collector/freshness.js';
import { backlogOf, parkedJobs, type CollectionSnapshot, type QueueState } from '../domain/queue-snapshot.js';
import { Slicer } from '../util/slicer.js';
import { queueId } from '../domain/queue-ref.js';
import { AccountingRing, type CumulativeHistogram, type RingLayout, type RingOptions, type WindowStats } from './accounting-ring.js';
import { assessQueue } from './queue-health.js';
import { API_VERSION, type QueueHistory, type QueuesResponse, type QueueView, type WindowView } from './queue-view.js';

/** One queue's cumulative event accounting, as the event reader persists it. */
export interface BoardAccounting {
  counters: { added: number; completed: number; failed: number; retried: number; stalled: number };
  wait: CumulativeHistogram;
  processing: CumulativeHistogram;
}

export interface QueueBoardOptions {
  collectIntervalSeconds: number;
  /** Upper bounds of the accounting histograms' buckets. */
  histogramBounds: readonly number[];
  /** History points kept per queue (default 64) over how many seconds (default 15 min). */
  maxPoints?: number;
  horizonSeconds?: number;
  bullBoardPath?: string;
  /** Slice length (ms) of the passes over every queue (util/slicer.ts); tests set 0 to yield at every check. */
  sliceMs?: number;
}

const GAUGES = ['backlog', 'active', 'delayed', 'oldestWaitingAgeSeconds', 'deadLetterJobs'] as const;
const COUNTERS = ['added', 'completed', 'failed', 'retried', 'stalled'] as const;
const WINDOWS = { '1m': 60, '15m': 900 } as const;
const EMPTY_HISTOGRAM: CumulativeHistogram = { buckets: [], count: 0, sum: 0 };

export class QueueBoard {
  /** Per queue, its history and the board pass (update) that last saw it: a ring not seen by a pass is dropped. */
  private readonly rings = new Map<string, { ring: AccountingRing; seen: number }>();
  private withAccounting = new Set<string>();
  private passes = 0;
  private last: CollectionSnapshot | undefined;
  /** Views of the last collection: several pages and `top`s polling cost one build per collection. */
  private cached: { seq: number; history: boolean; views: QueueView[] } | undefined;
  /**
   * The `queues` array of /api/queues as JSON, per collection and history flag, built in slices: at 10,000 queues
   * building and serialising the views takes about a second, which a scrape arriving meanwhile must not wait for.
   */
  private json = new Map<boolean, { seq: number; built: Promise<{ text: string; accountingAvailable: boolean }> }>();
  private ringShape: { layout: RingLayout; opts: RingOptions } | undefined;

  constructor(private readonly opts: QueueBoardOptions) {}

  /** Records a collection; `accounting` is keyed by queueId() and may miss queues the reader has not seen. */
  async update(s: CollectionSnapshot, accounting?: ReadonlyMap<string, BoardAccounting>): Promise<void> {
    // A failed collection says nothing about the queues: keep their history and show none of them.
    if (!s.ok) {
      this.last = s;
      return;
    }
    const dlq = deadLetterIndex(s.queues);
    // A collection's pass over every queue allocates nothing per queue but a new ring (one sample object reused:
    // the ring copies what it keeps), and marks the rings it saw by a pass number instead of building sets
    // of ids: at 10,000 queues every ~0.5 s, what this pass leaves for the GC is what the scrapes wait on.
    const mark = ++this.passes;
    const withAccounting = new Set<string>();
    const gauges = { backlog: 0, active: 0, delayed: 0, oldestWaitingAgeSeconds: 0, deadLetterJobs: 0 };
    const histograms: { wait: CumulativeHistogram; processing: CumulativeHistogram } = { wait: EMPTY_HISTOGRAM, processing: EMPTY_HISTOGRAM };
    const sample: { at: number; gauges: typeof gauges; counters?: BoardAccounting['counters']; histograms?: typeof histograms } = { at: s.finishedAt, gauges };
    // In slices (see Slicer); the board answers from the previous collection until every ring has its point.
    const slicer = new Slicer(this.opts.sliceMs);
    for (const q of s.queues) {
      if (slicer.due()) await slicer.yield();
      const id = queueId(q.ref);
      let entry = this.rings.get(id);
      if (!entry) {
        entry = { ring: this.newRing(), seen: mark };
        this.rings.set(id, entry);
      }
      entry.seen = mark;
      const acc = accounting?.get(id);
      if (acc) withAccounting.add(id);
      const d = dlq.get(id);
      gauges.backlog = backlogOf(q);
      gauges.active = q.jobs.active;
      gauges.delayed = q.jobs.delayed;
      gauges.oldestWaitingAgeSeconds = q.oldestWaitingAgeSeconds;
      gauges.deadLetterJobs = d ? parkedJobs(d) : 0;
      if (acc) {
        histograms.wait = acc.wait;
        histograms.processing = acc.processing;
        sample.counters = acc.counters;
        sample.histograms = histograms;
      } else {
        sample.counters = undefined;
        sample.histograms = undefined;
      }
      // The totals are the same object while a queue's accounting does not move (boardAccounting), never written.
      entry.ring.push(sample, acc);
    }
    for (const [id, entry] of this.rings) if (entry.seen !== mark) this.rings.delete(id);
    this.withAccounting = withAccounting;
    this.last = s;
    // What was built for the last collection is not kept past it (tens of MB at 10,000 queues); a build under way
    // still answers the requests waiting on it.
    this.cached = undefined;
    this.json.clear();
  }

  /** `intervalSeconds`: the collection interval in force (stretched past the configured one for a large fleet). */
  response(opts: { now: number; history?: boolean; intervalSeconds?: number; withQueues?: boolean }): QueuesResponse {
    const s = this.last;
    const interval = opts.intervalSeconds ?? this.opts.collectIntervalSeconds;
    // A collection hanging on a stalled Redis: like /metrics and /health (the same rule), stop showing the last
    // values as if current.
    const limit = staleLimitSeconds(interval);
    const stale = isStale(s, opts.now, interval);
    const ok = s?.ok === true && !stale;
    const queues = ok && opts.withQueues !== false ? this.cachedViews(s, opts.history ?? false) : [];
    let error: string | null = s?.error ?? null;
    if (s === undefined) error = 'no collection has run yet';
    else if (stale) error = `no collection finished in the last ${limit} s; Redis may be stalled`;
    return {
      version: API_VERSION,
      generatedAt: new Date(opts.now).toISOString(),
      collection: {
        ok,
        error,
        redisUp: s?.redisUp ?? false,
        collectedAt: s && s.lastSuccessAt > 0 ? new Date(s.lastSuccessAt).toISOString() : null,
        ageSeconds: s && s.lastSuccessAt > 0 ? Math.max(0, (opts.now - s.lastSuccessAt) / 1000) : null,
        intervalSeconds: interval,
      },
      accountingAvailable: queues.some((q) => q.windows['1m'] !== null),
      links: { metrics: '/metrics', health: '/health', bullBoard: this.opts.bullBoardPath ?? null },
      queues,
    };
  }

  /**
   * response() as the JSON text /api/queues sends, the same document: the queue views are built and serialised in
   * slices, once per collection (and history flag) however many clients poll; the envelope (ages, generatedAt) is
   * made per request.
   */
  async responseJson(opts: { now: number; history?: boolean; intervalSeconds?: number }): Promise<string> {
    const history = opts.history ?? false;
    const s = this.last;
    const envelope = this.response({ ...opts, history, withQueues: false });
    if (!envelope.collection.ok || s === undefined) return JSON.stringify(envelope);
    let entry = this.json.get(history);
    if (entry?.seq !== s.seq) {
      entry = { seq: s.seq, built: this.serialise(s, history) };
      this.json.set(history, entry);
    }
    const { text, accountingAvailable } = await entry.built;
    // The board may have moved on meanwhile; this answer is the collection it started from, consistent in itself.
    const { queues: _none, ...rest } = envelope;
    const head = JSON.stringify({ ...rest, accountingAvailable });
    return `${head.slice(0, -1)},"queues":${text}}`;
  }

  /** The views of `s`, sorted, as a JSON array, in slices. */
  private async serialise(s: CollectionSnapshot, history: boolean): Promise<{ text: string; accountingAvailable: boolean }> {
    const slicer = new Slicer(this.opts.sliceMs);
    const dlq = deadLetterIndex(s.queues);
    const rows: QueueView[] = [];
    for (const q of s.queues) {
      if (slicer.due()) await slicer.yield();
      rows.push(this.view(q, dlq, history));
    }
    rows.sort(byBadness);
    const parts: string[] = [];
    for (const v of rows) {
      if (slicer.due()) await slicer.yield();
      parts.push(JSON.stringify(v));
    }
    return { text: `[${parts.join(',')}]`, accountingAvailable: rows.some((q) => q.windows['1m'] !== null) };
  }

  private cachedViews(s: CollectionSnapshot, history: boolean): QueueView[] {
    if (this.cached?.seq !== s.seq || this.cached.history !== history) this.cached = { seq: s.seq, history, views: this.views(s, history) };
    return this.cached.views;
  }

  private views(s: CollectionSnapshot, withHistory: boolean): QueueView[] {
    const dlq = deadLetterIndex(s.queues);
    return s.queues.map((q) => this.view(q, dlq, withHistory)).sort(byBadness);
  }

  private view(q: QueueState, dlq: ReadonlyMap<string, QueueState>, withHistory: boolean): QueueView {
    const id = queueId(q.ref);
    const ring = this.rings.get(id)?.ring;
    const hasAccounting = this.withAccounting.has(id);
    const windows = {
      '1m': hasAccounting ? windowView(ring?.window(WINDOWS['1m'])) : null,
      '15m': hasAccounting ? windowView(ring?.window(WINDOWS['15m'])) : null,
    };
    const d = dlq.get(id);
    const deadLetter = d ? { queue: d.ref.name, jobs: parkedJobs(d), oldestAgeSeconds: d.oldestWaitingAgeSeconds, addedLast15m: this.deadLettered(d) } : null;
    const view: QueueView = {
      prefix: q.ref.prefix,
      name: q.ref.name,
      deadLetterOf: q.dlqOf ?? null,
      jobs: { ...q.jobs },
      backlog: backlogOf(q),
      paused: q.paused,
      rateLimited: q.rateLimited,
      oldestWaitingAgeSeconds: q.oldestWaitingAgeSeconds,
      oldestActiveAgeSeconds: q.oldestActiveAgeSeconds,
      delayedOverdue: q.delayedOverdue,
      orphanedActive: q.orphanedActive,
      workers: q.workers ?? null,
      deadLetter,
      windows,
      health: assessQueue({
        state: q,
        deadLetterJobs: deadLetter?.jobs ?? 0,
        deadLetteredLast15m: deadLetter?.addedLast15m ?? null,
        last15m: windows['15m'],
      }),
    };
    if (withHistory && ring) view.history = historyView(ring, hasAccounting);
    return view;
  }

  /** Jobs added to a dead-letter queue over the last 15 minutes, from its own accounting. */
  private deadLettered(d: QueueState): number | null {
    const id = queueId(d.ref);
    if (!this.withAccounting.has(id)) return null;
    return this.rings.get(id)?.ring.window(WINDOWS['15m'])?.increase('added') ?? null;
  }

  private newRing(): AccountingRing {
    // One layout and one set of options for every ring (not two objects per queue).
    this.ringShape ??= {
      layout: { gauges: GAUGES, counters: COUNTERS, histograms: ['wait', 'processing'], bounds: this.opts.histogramBounds },
      // 64 points over 15 minutes: about one per 15 s once full; 2-3 KB per queue, +5.5 KB with traffic (docs/scaling.md).
      opts: { maxPoints: this.opts.maxPoints ?? 64, horizonMs: (this.opts.horizonSeconds ?? 900) * 1000 },
    };
    return new AccountingRing(this.ringShape.layout, this.ringShape.opts);
  }
}

/** Worst first: health rank, then oldest waiting age, then backlog; then by name for a stable order. */
export function byBadness(a: QueueView, b: QueueView): number {
  return (
    b.health.rank - a.health.rank ||
    b.oldestWaitingAgeSeconds - a.oldestWaitingAgeSeconds ||
    b.backlog - a.backlog ||
    a.name.localeCompare(b.name) ||
    a.prefix.localeCompare(b.prefix)
  );
}

/** Source queue id -> its dead-letter queue's state. */
function deadLetterIndex(queues: readonly QueueState[]): Map<string, QueueState> {
  const out = new Map<string, QueueState>();
  for (const q of queues) if (q.dlqOf !== undefined) out.set(queueId({ prefix: q.ref.prefix, name: q.dlqOf }), q);
  return out;
}

function windowView(w: WindowStats | null | undefined): WindowView | null {
  if (!w) return null;
  const rates = { added: w.rate('added'), completed: w.rate('completed'), failed: w.rate('failed'), retried: w.rate('retried'), stalled: w.rate('stalled') };
  const finished = w.increase('completed') + w.increase('failed');
  const quantiles = (h: string) => ({ count: w.observations(h), p50: w.quantile(h, 0.5), p95: w.quantile(h, 0.95), p99: w.quantile(h, 0.99) });
  return {
    seconds: w.seconds,
    rates,
    failureRatio: finished > 0 ? w.increase('failed') / finished : null,
    wait: quantiles('wait'),
    processing: quantiles('processing'),
  };
}

function historyView(ring: AccountingRing, hasAccounting: boolean): QueueHistory {
  const h = ring.history();
  const rate = (c: string) => (hasAccounting ? h.rates[c]! : h.t.map(() => null));
  const completed = rate('completed');
  const failed = rate('failed');
  return {
    t: h.t,
    backlog: h.gauges.backlog!,
    active: h.gauges.active!,
    delayed: h.gauges.delayed!,
    oldestWaitingAgeSeconds: h.gauges.oldestWaitingAgeSeconds!,
    deadLetterJobs: h.gauges.deadLetterJobs!,
    addedPerSecond: rate('added'),
    finishedPerSecond: completed.map((c, i) => (c === null || failed[i] == null ? null : c + failed[i]!)),
    failedPerSecond: failed,
  };
}
