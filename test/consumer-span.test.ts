// The consumer span's parent, read from the trace context BullMQ's telemetry hook stored in the job: the common
// traceparent-only form is read directly, anything else goes through the propagators, and both must give what the
// W3C propagator gives.
import './helpers/in-memory-tracing-job.js';
import { randomBytes } from 'node:crypto';
import { trace, TraceFlags } from '@opentelemetry/api';
import type { Job } from 'bullmq';
import { beforeEach, describe, expect, it } from 'vitest';
import { startConsumerSpan } from '../src/tracing/consumer-span.js';
import { exporter, spans } from './helpers/in-memory-spans.js';

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const job = (metadata?: string) =>
  ({ id: '7', name: 'welcome', attemptsMade: 0, opts: metadata === undefined ? {} : { telemetry: { metadata } } }) as unknown as Job;
const traceparent = (traceId: string, spanId: string, flags: string) => `00-${traceId}-${spanId}-${flags}`;

const provider = trace.getTracerProvider() as unknown as { getDelegate(): { forceFlush(): Promise<void> } };

/** Runs one attempt and returns its recorded span, if any. */
async function attempt(metadata?: string) {
  const s = startConsumerSpan(job(metadata), 'email');
  const context = trace.getSpanContext(s.context);
  s.end();
  // The first export waits for the resource's detectors.
  await provider.getDelegate().forceFlush();
  return { recorded: spans().at(-1), context };
}

beforeEach(() => exporter.reset());

describe('consumer span parent', () => {
  it('takes a sampled traceparent-only parent as the W3C propagator does', async () => {
    const [traceId, spanId] = [hex(16), hex(8)];
    const { recorded } = await attempt(JSON.stringify({ traceparent: traceparent(traceId, spanId, '01') }));
    expect(recorded?.spanContext().traceId).toBe(traceId);
    expect(recorded?.parentSpanContext).toMatchObject({ traceId, spanId, isRemote: true, traceFlags: TraceFlags.SAMPLED });
    expect(recorded?.name).toBe('process email');
  });

  it('records nothing for an unsampled parent, and still carries its trace id', async () => {
    const [traceId, spanId] = [hex(16), hex(8)];
    const { recorded, context } = await attempt(JSON.stringify({ traceparent: traceparent(traceId, spanId, '00') }));
    expect(recorded).toBeUndefined();
    expect(context).toMatchObject({ traceId, spanId, traceFlags: TraceFlags.NONE });
  });

  it('keeps the tracestate next to the traceparent (through the propagator)', async () => {
    const [traceId, spanId] = [hex(16), hex(8)];
    const { recorded } = await attempt(JSON.stringify({ traceparent: traceparent(traceId, spanId, '01'), tracestate: 'vendor=abc' }));
    expect(recorded?.parentSpanContext).toMatchObject({ traceId, spanId, isRemote: true });
    expect(recorded?.spanContext().traceState?.get('vendor')).toBe('abc');
  });

  it('starts a trace of its own where the propagator would: invalid ids, upper-case hex, another version, garbage', async () => {
    const [traceId, spanId] = [hex(16), hex(8)];
    for (const metadata of [
      JSON.stringify({ traceparent: traceparent('0'.repeat(32), spanId, '01') }),
      JSON.stringify({ traceparent: traceparent(traceId.toUpperCase(), spanId, '01') }),
      JSON.stringify({ traceparent: `ff-${traceId}-${spanId}-01` }),
      '{"traceparent":',
      undefined,
    ]) {
      const { recorded } = await attempt(metadata);
      expect(recorded, String(metadata)).toBeDefined();
      expect(recorded?.parentSpanContext, String(metadata)).toBeUndefined();
      expect(recorded?.spanContext().traceId, String(metadata)).not.toBe(traceId);
    }
  });
});
