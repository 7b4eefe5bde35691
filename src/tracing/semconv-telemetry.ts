// Owns the BullMQ telemetry hook of queuelens's queues: bullmq-otel's context propagation (producer -> job data ->
// consumer) and producer spans that also carry the OpenTelemetry messaging semantic-convention attributes.
import { context, SpanKind, trace, type AttributeValue, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { TelemetryAttributes, type Telemetry } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';

// Attribute names from the messaging semantic conventions (stable names, spelled once here).
export const ATTR = {
  system: 'messaging.system',
  destination: 'messaging.destination.name',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  messageId: 'messaging.message.id',
} as const;

const QUEUE_NAME = TelemetryAttributes.QueueName;
const JOB_ID = TelemetryAttributes.JobId;

type BullSpan = ReturnType<Telemetry['tracer']['startSpan']>;

/** Writes BullMQ's attributes and, for `add` spans, their semconv twins; never throws into BullMQ. */
class SemconvSpan {
  constructor(
    private readonly span: Span,
    /** A producer (`add`) span: the one kind that gets the semconv twins. */
    private readonly producer: boolean,
  ) {}
  setSpanOnContext(ctx: Context): Context {
    return trace.setSpan(ctx, this.span);
  }
  setAttribute(key: string, value: AttributeValue): void {
    // BullMQ builds its attributes whatever the sampler said; an unsampled span drops them here, unread.
    if (!this.span.isRecording()) return;
    this.span.setAttribute(key, value);
    if (this.producer) this.mirror(key, value);
  }
  setAttributes(attributes: Attributes): void {
    if (!this.span.isRecording()) return;
    this.span.setAttributes(attributes);
    if (!this.producer) return;
    if (QUEUE_NAME in attributes) this.mirror(QUEUE_NAME, attributes[QUEUE_NAME]);
    if (JOB_ID in attributes) this.mirror(JOB_ID, attributes[JOB_ID]);
  }
  addEvent(name: string, attributes?: Attributes): void {
    this.span.addEvent(name, attributes);
  }
  recordException(exception: unknown): void {
    this.span.recordException(exception as Error);
  }
  end(): void {
    this.span.end();
  }
  private mirror(key: string, value: AttributeValue | undefined): void {
    if (key === QUEUE_NAME && typeof value === 'string') {
      this.span.setAttribute(ATTR.system, 'bullmq');
      this.span.setAttribute(ATTR.destination, value);
      this.span.setAttribute(ATTR.operationType, 'send');
      this.span.setAttribute(ATTR.operationName, 'add');
    } else if (key === JOB_ID && (typeof value === 'string' || typeof value === 'number')) {
      this.span.setAttribute(ATTR.messageId, String(value));
    }
  }
}

// bullmq-otel keeps the wire format of the propagated context (the job's `tm` option) the one other bullmq-otel
// producers and consumers use.
const propagation = new BullMQOtel({ tracerName: 'queuelens' }).contextManager;

/** The producer's context stored in a job (`opts.telemetry.metadata`), on top of `active`. */
export function jobContext(active: Context, metadata: string): Context {
  try {
    return propagation.fromMetadata(active, metadata);
  } catch {
    // Metadata another producer wrote and we cannot read: the attempt starts a trace of its own.
    return active;
  }
}

/** Stands in for a BullMQ operation that gets no span: the context passes through unchanged. */
const NO_SPAN: BullSpan = {
  setSpanOnContext: (ctx: Context) => ctx,
  setAttribute() {},
  setAttributes() {},
  addEvent() {},
  recordException() {},
  end() {},
} as unknown as BullSpan;

/**
 * The hook queuelens's queues (producers, dead-letter tools) pass to BullMQ. Workers get none: their consumer span
 * is opened by consumer-span.ts.
 */
export function createTelemetry(): Telemetry {
  const tracer = trace.getTracer('queuelens');
  return {
    contextManager: {
      getMetadata: (ctx: Context) => propagation.getMetadata(ctx),
      fromMetadata: (active: Context, metadata: string) => propagation.fromMetadata(active, metadata),
      active: () => context.active(),
      with: (ctx: Context, fn: (...args: unknown[]) => unknown) => (ctx === context.active() ? fn() : context.with(ctx, fn)),
    },
    tracer: {
      startSpan(name, options, ctx) {
        const kind = options?.kind as unknown as SpanKind | undefined;
        // Housekeeping (close, pause, clean…) only inside a recorded trace: on its own it would be a root span of
        // one, such as `close email-dlq` from every worker that shuts down.
        if (kind === SpanKind.INTERNAL && !trace.getSpan((ctx as Context | undefined) ?? context.active())?.isRecording()) return NO_SPAN;
        const span = tracer.startSpan(name, { kind }, ctx as Context | undefined);
        return new SemconvSpan(span, kind === SpanKind.PRODUCER) as unknown as BullSpan;
      },
    },
  } as Telemetry;
}
