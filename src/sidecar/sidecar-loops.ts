// Owns the sidecar's two timers over a backend: discovery passes (a failed one retried within 5 s) and collection
// cycles (collection-cycle.ts, the cycle `top` runs too) at the interval in force, stretched while whole cycles
// outgrow the configured one (stretch.ts), and promptly when the backend saw queues change (change-driven
// collection, collector/change-plan.ts). Each failure is logged once, with its recovery; the event follower is
// handed the queue list whenever discovery changed it.
import { collectOnChange } from '../collector/change-plan.js';
import type { QueueEventAccounting } from '../domain/event-accounting.js';
import type { SidecarBackend } from '../domain/backend.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import type { CollectionSnapshot } from '../domain/queue-snapshot.js';
import type { Logger } from '../log/logger.js';
import type { QueueBoard } from '../status/queue-board.js';
import { startIntervalLoop, type IntervalLoop } from '../util/interval-loop.js';
import { runCollectionCycle } from './collection-cycle.js';
import type { SidecarMetrics } from './sidecar-metrics.js';
import { stretchedInterval } from './stretch.js';

export interface SidecarLoopsOptions {
  backend: SidecarBackend;
  board: QueueBoard;
  metrics: SidecarMetrics;
  collectIntervalSeconds: number;
  discoveryIntervalSeconds: number;
  log: Logger;
}

/** A failed discovery pass is retried within this many ms (or the discovery interval, if shorter). */
const DISCOVERY_RETRY_MS = 5000;

export class SidecarLoops {
  private last: CollectionSnapshot | undefined;
  /** Seconds; above the configured interval while whole cycles take longer than it. */
  private interval: number;
  private followed = -1;
  private discoveryFailed = false;
  private readBackFailed = false;
  private readonly loops: IntervalLoop[] = [];
  private stopPrompt: (() => void) | undefined;
  private listed: { queues: readonly QueueRef[]; ids: ReadonlySet<string> } | undefined;

  constructor(private readonly o: SidecarLoopsOptions) {
    this.interval = o.collectIntervalSeconds;
  }

  /** The last collection, if any. */
  get snapshot(): CollectionSnapshot | undefined {
    return this.last;
  }

  /** The interval in force (seconds): what freshness is judged against. */
  get intervalSeconds(): number {
    return this.interval;
  }

  /** Starts both timers: a collection now, the next discovery pass after the discovery interval. */
  start(): void {
    const collecting = startIntervalLoop(
      () => this.collectOnce(),
      () => this.interval * 1000,
    );
    this.loops.push(collecting);
    // A queue whose events moved is collected within about a second, not at the next interval.
    const { onChange } = this.o.backend;
    if (onChange) this.stopPrompt = collectOnChange(onChange, () => collecting.runNow());
    const discoveryMs = this.o.discoveryIntervalSeconds * 1000;
    this.loops.push(
      startIntervalLoop(
        () => this.discoverOnce(),
        () => (this.discoveryFailed ? Math.min(discoveryMs, DISCOVERY_RETRY_MS) : discoveryMs),
        {
          runImmediately: false,
        },
      ),
    );
  }

  /** Resolves when the runs under way have finished; no further runs start. */
  async stop(): Promise<void> {
    this.stopPrompt?.();
    await Promise.all(this.loops.map((l) => l.stop()));
  }

  async discoverOnce(): Promise<void> {
    const { discovery } = this.o.backend;
    const { log } = this.o;
    try {
      await discovery.runPass();
      this.follow(true);
      if (this.discoveryFailed) log.info({ queues: discovery.queues().length }, 'discovery recovered');
      this.discoveryFailed = false;
    } catch (err) {
      if (!this.discoveryFailed) log.warn({ err: (err as Error).message }, 'queue discovery failed; retrying on the next pass');
      this.discoveryFailed = true;
    }
  }

  /** One cycle; `full`: every queue and worker read now (an explicit refresh). */
  async collectOnce(full = false): Promise<void> {
    const { log, collectIntervalSeconds: configured } = this.o;
    const started = Date.now();
    const { snapshot: s } = await runCollectionCycle({
      collector: this.o.backend.snapshots,
      board: this.o.board,
      readAccounting: () => this.readBack(),
      onSnapshot: (snapshot) => this.collected(snapshot),
      full,
    });
    const cycleSeconds = (Date.now() - started) / 1000;
    const next = stretchedInterval(configured, cycleSeconds, s.ok);
    if (next !== this.interval) {
      if (next > configured)
        log.warn(
          { cycleSeconds, intervalSeconds: next, configured },
          'collection cycles outgrow --collect-interval; stretching the interval instead of serving stale data',
        );
      else log.info({ cycleSeconds, intervalSeconds: next }, 'collection cycles fit --collect-interval again');
    }
    this.interval = next;
    this.o.metrics.cycleDone(s, cycleSeconds, this.interval);
  }

  /** Hands the follower discovery's list, when it changed (`always`: after a pass). */
  private follow(always = false): void {
    const { discovery, events } = this.o.backend;
    if (!always && discovery.generation === this.followed) return;
    this.followed = discovery.generation;
    events?.setQueues(discovery.queues());
  }

  private async collected(s: CollectionSnapshot): Promise<void> {
    const { log } = this.o;
    // A collection can find a new queue (a worker connection for it): the follower follows it at once.
    this.follow();
    const last = this.last;
    if (!s.ok && (last === undefined || last.ok || last.error !== s.error)) log.warn({ err: s.error }, 'collection failed');
    if (s.ok && last !== undefined && !last.ok) log.info({ queues: s.queues.length }, 'collection recovered');
    this.last = s;
    await this.o.metrics.collected(s);
  }

  /** Reads the persisted accounting back and renders it; undefined when events are off or it cannot be read. */
  private async readBack(): Promise<QueueEventAccounting[] | undefined> {
    const { backend, log } = this.o;
    if (!backend.events || !backend.readAccounting) return undefined;
    let queues: QueueEventAccounting[] | undefined;
    try {
      queues = await backend.readAccounting();
      if (this.readBackFailed) log.info('event accounting read-back recovered');
      this.readBackFailed = false;
    } catch (err) {
      if (!this.readBackFailed) log.warn({ err: (err as Error).message }, 'cannot read the event accounting back; event metrics are absent until it works');
      this.readBackFailed = true;
    }
    await this.o.metrics.accounting(queues, this.listedIds(backend.discovery.queues()));
    return queues;
  }

  /** The ids of discovery's list, built again only when the list is a new array (QueueList.queues()). */
  private listedIds(queues: readonly QueueRef[]): ReadonlySet<string> {
    if (this.listed?.queues !== queues) this.listed = { queues, ids: new Set(queues.map(queueId)) };
    return this.listed.ids;
  }
}
