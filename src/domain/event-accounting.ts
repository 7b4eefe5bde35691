// Owns the shape of the event accounting as every replica reads it back: per queue, counters, latency histograms
// and the reader's own health, as plain data. The events/ state machine produces it (events/accounting.ts keeps
// it in a Redis hash); metrics/ and status/ render it; a backend hands it up through SidecarBackend.readAccounting.
import type { QueueRef } from './queue-ref.js';

export const EVENT_COUNTERS = ['added', 'completed', 'failed', 'retried', 'stalled', 'deduplicated'] as const;
export type EventCounter = (typeof EVENT_COUNTERS)[number];

/** Each histogram and the values of its one label (`attempt` for wait, `outcome` for the others). */
export const EVENT_HISTOGRAMS = {
  wait: ['first', 'retry'],
  processing: ['completed', 'failed', 'retried'],
  e2e: ['completed', 'failed'],
} as const;
export type EventHistogram = keyof typeof EVENT_HISTOGRAMS;
export type HistogramLabel<H extends EventHistogram> = (typeof EVENT_HISTOGRAMS)[H][number];

export interface CounterSeries {
  counter: EventCounter;
  jobName: string;
  value: number;
}

export interface HistogramSeries {
  histogram: EventHistogram;
  /** The attempt (wait) or outcome (processing, e2e) label value. */
  label: string;
  jobName: string;
  /** Cumulative counts, one per EVENT_BUCKETS_SECONDS bound (the +Inf bucket is `count`). */
  buckets: number[];
  /**
   * The same observations in the exponential buckets of a native histogram (NATIVE_SCHEMA): count per bucket
   * index, only the populated ones, and the observations of 0 ms (the zero bucket). Missing what was observed
   * before the accounting kept them (the exposition then serves that series as a classic histogram only).
   */
  native?: Map<number, number>;
  nativeZero?: number;
  count: number;
  sumSeconds: number;
}

export interface ReaderHealth {
  read: number;
  lost: number;
  unmatched: number;
  evicted: number;
  lagSeconds: number;
}

/** What every replica renders for one queue: plain data, identical wherever it is read. */
export interface QueueEventStats {
  counters: CounterSeries[];
  histograms: HistogramSeries[];
  reader: ReaderHealth;
}

/** One queue's persisted accounting, as read back. */
export interface QueueEventAccounting {
  queue: QueueRef;
  stats: QueueEventStats;
}
