// Owns whether this process traces: the register module (or a test) turns it on, and everything that
// creates BullMQ queues and workers asks here. Off means zero tracing overhead.
import type { Telemetry } from 'bullmq';
import { createTelemetry } from './semconv-telemetry.js';

let telemetry: Telemetry | undefined;
let shutdown: (() => Promise<void>) | undefined;
let explicit = false;

/** `explicitContext`: the job context manager runs (nothing follows an `await` by itself). */
export function enableTracing(flush?: () => Promise<void>, explicitContext = false): void {
  telemetry ??= createTelemetry();
  shutdown = flush;
  explicit = explicitContext;
}

/** True when context is passed on by hand (job-context-manager.ts); false with AsyncLocalStorage. */
export function explicitContext(): boolean {
  return explicit;
}

/** The BullMQ telemetry option for queues (producers), or undefined while tracing is off. */
export function activeTelemetry(): Telemetry | undefined {
  return telemetry;
}

/** Whether workers open a consumer span per attempt. */
export function tracingEnabled(): boolean {
  return telemetry !== undefined;
}

/** Flushes pending spans; safe to call when tracing is off and more than once. */
export async function shutdownTracing(): Promise<void> {
  const fn = shutdown;
  shutdown = undefined;
  await fn?.();
}
