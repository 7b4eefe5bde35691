// Owns whether this process traces: the register module (or a test) turns it on, and everything that
// creates BullMQ queues and workers asks here for the telemetry hook. Off means zero tracing overhead.
import type { Telemetry } from 'bullmq';
import { createTelemetry } from './semconv-telemetry.js';

let telemetry: Telemetry | undefined;
let shutdown: (() => Promise<void>) | undefined;

export function enableTracing(flush?: () => Promise<void>): void {
  telemetry ??= createTelemetry();
  shutdown = flush;
}

/** The BullMQ telemetry option, or undefined while tracing is off. */
export function activeTelemetry(): Telemetry | undefined {
  return telemetry;
}

/** Flushes pending spans; safe to call when tracing is off and more than once. */
export async function shutdownTracing(): Promise<void> {
  const fn = shutdown;
  shutdown = undefined;
  await fn?.();
}
