// Owns what /metrics shows as time passes, so that a scrape only reads the body: each cycle's snapshot and
// accounting are rendered once when they arrive, and what time does to them happens here, not on the scrape path:
// - expiry: when the freshness rule (collector/freshness.ts) calls the last collection stale, a timer armed at
//   the end of each cycle blanks the queue gauges (`up 0`) and the event series, which come from the same hung
//   store: no last value is presented as current. /health, /readyz and /api/queues judge by the same rule.
// - leadership: a lease can lapse between collections (a renewal hung on a stalled link), so the leader flag
//   follows the event follower every second, and is brought up to date at each scrape (render()).
import { isStale, staleLimitSeconds } from '../collector/freshness.js';
import type { EventFollower } from '../domain/backend.js';
import type { QueueEventAccounting } from '../domain/event-accounting.js';
import type { CollectionSnapshot } from '../domain/queue-snapshot.js';
import { EventMetrics } from '../metrics/event-metrics.js';
import { Exposition, type ExpositionFormat, type RenderedMetrics } from '../metrics/exposition.js';
import type { HistogramMode } from '../config/sidecar-config.js';
import { QueueMetrics } from '../metrics/queue-metrics.js';

/** How often the leader flag follows the follower's lease. */
const LEADER_FOLLOW_MS = 1000;

export interface SidecarMetricsOptions {
  collectIntervalSeconds: number;
  /** The event follower whose accounting and leadership are rendered; absent: no event series. */
  events?: EventFollower;
  /** --histograms: where the latency histograms are rendered; default per queue. */
  histograms?: HistogramMode;
}

export class SidecarMetrics {
  private readonly exposition: Exposition;
  private readonly queues: QueueMetrics;
  private readonly eventMetrics: EventMetrics | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private leaderTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The interval in force as of the last cycle's end (seconds): what freshness is judged against meanwhile. */
  private intervalSeconds: number;

  constructor(private readonly o: SidecarMetricsOptions) {
    // Process metrics as fresh as the queue gauges: the ~1 MB body of 1,000 queues is then rebuilt once per
    // collection, not once a second while scraped.
    this.intervalSeconds = o.collectIntervalSeconds;
    this.exposition = new Exposition(Math.max(1000, o.collectIntervalSeconds * 1000));
    this.queues = new QueueMetrics(this.exposition);
    this.eventMetrics = o.events ? new EventMetrics(this.exposition, o.histograms) : undefined;
    if (o.events) {
      const events = o.events;
      this.leaderTimer = setInterval(() => this.eventMetrics?.setLeader(events.isLeader), LEADER_FOLLOW_MS);
      this.leaderTimer.unref();
    }
  }

  /**
   * The /metrics body: what the cycles rendered, with the leader flag as of now. The flag is a function of the
   * clock (a lease lapses the moment its last renewal is a lease old), so a timer alone would show two leaders for
   * up to its period after another replica took over; it changes the body only when leadership changed.
   */
  render(format: ExpositionFormat | boolean, acceptGzip: boolean): Promise<RenderedMetrics> {
    if (this.o.events) this.eventMetrics?.setLeader(this.o.events.isLeader);
    return this.exposition.render(format, acceptGzip);
  }

  /**
   * A collection finished (ok or not): its gauges replace the last ones. The previous collection's expiry is
   * disarmed now, not at the cycle's end: the rest of a cycle (read-back, rendering, the board) can outlast the
   * previous collection's stale limit at 50,000 queues, and that expiry blanked the gauges just rendered from this
   * one. A successful collection is judged from its cycle's end on, against the interval that cycle leaves in force
   * (a long first cycle stretches it; judged against the configured one, it blanked itself before its cycle ended);
   * a failed one keeps the age of the last success and is judged now.
   */
  async collected(s: CollectionSnapshot): Promise<void> {
    await this.queues.update(s);
    if (s.ok) this.disarmExpiry();
    else this.armExpiry(s, this.intervalSeconds);
  }

  /**
   * The accounting read back (undefined: it could not be read, and the event series are absent until it can).
   * `listed`: the queueId()s discovery lists; the others are not rendered.
   */
  async accounting(queues: readonly QueueEventAccounting[] | undefined, listed: ReadonlySet<string>): Promise<void> {
    await this.eventMetrics?.update({ queues, leader: this.o.events?.isLeader ?? false, listed });
  }

  /** A whole cycle ended with `last` as the last collection; `intervalSeconds` is the interval now in force. */
  cycleDone(last: CollectionSnapshot, cycleSeconds: number, intervalSeconds: number): void {
    this.intervalSeconds = intervalSeconds;
    this.queues.setCycle(cycleSeconds, intervalSeconds);
    this.armExpiry(last, intervalSeconds);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.expiry);
    clearInterval(this.leaderTimer);
  }

  /** Blanks the values when `last` turns stale, unless a newer cycle re-arms first. */
  private disarmExpiry(): void {
    clearTimeout(this.expiry);
    this.expiry = undefined;
  }

  private armExpiry(last: CollectionSnapshot, intervalSeconds: number): void {
    this.disarmExpiry();
    // Never succeeded: nothing was shown as current, nothing expires (`up 0` already says why).
    if (this.closed || last.lastSuccessAt <= 0) return;
    const check = (): void => {
      const now = Date.now();
      if (!isStale(last, now, intervalSeconds)) {
        // Stale one millisecond past the limit (freshness.ts compares strictly); a timer can also fire early.
        this.expiry = setTimeout(check, last.lastSuccessAt + staleLimitSeconds(intervalSeconds) * 1000 + 1 - now);
        this.expiry.unref();
        return;
      }
      this.expiry = undefined;
      // Without queues nothing is rendered, and no scrape gets the old series once this is called.
      if (this.queues.markStale()) void this.eventMetrics?.update({ queues: undefined, leader: this.o.events?.isLeader ?? false });
    };
    check();
  }
}
