// Owns the consumer span of one job attempt (`process <queue>`): its parent is the producer's context that
// BullMQ's telemetry hook stored in the job (bullmq-otel's wire format), so every attempt, retries included,
// sits under the `add` span of the one trace.
//
// Why queuelens opens it rather than BullMQ's Worker: with a `telemetry` option the Worker wraps every job, and
// the BullMQ operations inside it, in async tracing layers whether or not the job is sampled. With it (and
// AsyncLocalStorage) a noop worker with nothing sampled ran at 79% of its untraced throughput, without both at 97%
// (docs/benchmarks.md, Workers). Here an attempt its producer did not sample costs a look at the traceparent's flags,
// and its context is built only if the processor asks for it (to pass on to a job it enqueues, or for a log line).
import { randomBytes } from 'node:crypto';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';
import { TelemetryAttributes, type Job } from 'bullmq';
import { redactString } from '../log/redact.js';
import { ATTR, jobContext } from './semconv-telemetry.js';
import { explicitContext } from './state.js';

export interface ConsumerSpan {
  /** The attempt's context: parent of the processor's spans and of the jobs it enqueues. */
  readonly context: Context;
  /** trace_id/span_id for the attempt's log lines (also when unsampled: logs still join by trace id). */
  logFields(): Record<string, string>;
  /** Runs the processor with the attempt's context active (all the way through with AsyncLocalStorage). */
  run<T>(fn: () => T): T;
  end(error?: unknown): void;
}

const tracer = () => trace.getTracer('queuelens');

// The sampled flag of a W3C traceparent, as bullmq-otel stores it: {"traceparent":"00-<trace>-<span>-<flags>"}, with
// other propagators' fields (tracestate, baggage) around it when they have something to say.
const TRACEPARENT_FLAGS = /"traceparent":"[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-([\da-f]{2})"/;
// The same when the traceparent is all there is, the common case (version 00, as the W3C propagator writes it).
const ONLY_TRACEPARENT = /^\{"traceparent":"00-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})"\}$/;

export function startConsumerSpan(job: Job, queue: string): ConsumerSpan {
  const metadata = (job.opts as { telemetry?: { metadata?: string } }).telemetry?.metadata;
  if (metadata === undefined) return recordedAttempt(job, queue, context.active());
  const remote = onlyTraceparent(metadata);
  const flags = remote ? remote.traceFlags : traceparentFlags(metadata);
  if (flags !== undefined && (flags & TraceFlags.SAMPLED) === 0 && followsUnsampledParent()) return new UnsampledAttempt(metadata);
  // The remote parent the W3C propagator would extract, without JSON.parse and the propagator: ~3 µs less per sampled
  // job in a microbenchmark with 2 MB of other work between jobs (a busy worker's caches are never warm for the
  // tracing path), 0.4 µs back to back. Anything else goes through the propagator.
  const parent = remote ? trace.setSpanContext(context.active(), remote) : jobContext(context.active(), metadata);
  return recordedAttempt(job, queue, parent);
}

function recordedAttempt(job: Job, queue: string, parent: Context): ConsumerSpan {
  const span = tracer().startSpan(`process ${queue}`, { kind: SpanKind.CONSUMER }, parent);
  // Attributes only on a recorded span: an unsampled attempt builds nothing.
  if (span.isRecording()) span.setAttributes(consumerAttributes(job, queue));
  return new AttemptSpan(span, trace.setSpan(parent, span));
}

let readsTraceparent: boolean | undefined;

/**
 * The remote span context of metadata that holds a version-00 traceparent and nothing else. All-zero ids pass here;
 * the tracer starts a trace of its own under such a parent, as it does when the propagator refuses them.
 */
function onlyTraceparent(metadata: string): SpanContext | undefined {
  // Only when this process's propagator reads traceparent: otherwise the field means nothing to it (OTEL_PROPAGATORS=b3).
  readsTraceparent ??= propagation.fields().includes('traceparent');
  const [, traceId, spanId, flags] = (readsTraceparent && ONLY_TRACEPARENT.exec(metadata)) || [];
  if (traceId === undefined || spanId === undefined || flags === undefined) return undefined;
  return { traceId, spanId, traceFlags: parseInt(flags, 16), isRemote: true };
}

function traceparentFlags(metadata: string): number | undefined {
  const flags = TRACEPARENT_FLAGS.exec(metadata)?.[1];
  return flags === undefined ? undefined : parseInt(flags, 16);
}

/**
 * The semantic-convention attributes and BullMQ's job identity. Every attribute costs each recorded span time to set
 * and to serialise (~0.4 µs); the worker's host and pid are on the resource, once per export.
 */
function consumerAttributes(job: Job, queue: string): Attributes {
  const id = String(job.id);
  return {
    [ATTR.system]: 'bullmq',
    [ATTR.destination]: queue,
    [ATTR.operationType]: 'process',
    [ATTR.operationName]: 'process',
    [ATTR.messageId]: id,
    [TelemetryAttributes.QueueName]: queue,
    [TelemetryAttributes.JobId]: id,
    [TelemetryAttributes.JobName]: job.name,
    // Attempts before this one: 0 on the first attempt, as BullMQ counts.
    [TelemetryAttributes.JobAttemptsMade]: job.attemptsMade,
  };
}

let skipsUnsampled: boolean | undefined;

/**
 * Whether this process's sampler leaves a span unrecorded when its remote parent was not sampled (every
 * `parentbased_*` sampler, the SDK's default). Asked once, of the tracer itself, so it holds for whatever
 * OTEL_TRACES_SAMPLER says: a ratio-based sampler always samples the lowest trace id, and a random one stands for the
 * rest. The probe spans are never ended, so nothing is exported.
 */
function followsUnsampledParent(): boolean {
  skipsUnsampled ??= [`${'0'.repeat(31)}1`, randomBytes(16).toString('hex')].every((traceId) => {
    const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: randomBytes(8).toString('hex'), traceFlags: TraceFlags.NONE, isRemote: true });
    return !tracer().startSpan('queuelens sampler probe', { kind: SpanKind.CONSUMER }, parent).isRecording();
  });
  return skipsUnsampled;
}

/** An attempt nothing records: the producer's (unsampled) context is extracted only when something asks for it. */
class UnsampledAttempt implements ConsumerSpan {
  private ctx?: Context;
  constructor(private readonly metadata: string) {}

  get context(): Context {
    this.ctx ??= jobContext(context.active(), this.metadata);
    return this.ctx;
  }

  logFields(): Record<string, string> {
    return spanLogFields(trace.getSpanContext(this.context));
  }

  run<T>(fn: () => T): T {
    // With explicit context nothing past the processor's first `await` would see it, and queuelens's processors take
    // ctx.trace; with AsyncLocalStorage, a library's instrumentation inside the processor must not start a new trace.
    return explicitContext() ? fn() : context.with(this.context, fn);
  }

  end(): void {}
}

function spanLogFields(sc: SpanContext | undefined): Record<string, string> {
  if (!sc || !trace.isSpanContextValid(sc)) return {};
  return { trace_id: sc.traceId, span_id: sc.spanId, trace_flags: `0${sc.traceFlags.toString(16)}` };
}

class AttemptSpan implements ConsumerSpan {
  constructor(
    private readonly span: Span,
    readonly context: Context,
  ) {}

  logFields(): Record<string, string> {
    return spanLogFields(this.span.spanContext());
  }

  run<T>(fn: () => T): T {
    return context.with(this.context, fn);
  }

  end(error?: unknown): void {
    if (error !== undefined && this.span.isRecording()) {
      // The message is already redacted by the worker; mask again in case a caller passes a raw error.
      const message = redactString((error as Error).message ?? String(error));
      this.span.recordException({ name: (error as Error).name ?? 'Error', message });
      this.span.setStatus({ code: SpanStatusCode.ERROR, message });
    }
    this.span.end();
  }
}
