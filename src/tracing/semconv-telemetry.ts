// Owns the BullMQ telemetry hook: bullmq-otel's context propagation (producer -> job data -> consumer), spans
// that also carry the OpenTelemetry messaging semantic-convention attributes, and which BullMQ operations get
// no span of their own.
import { context, createContextKey, SpanKind, trace, type AttributeValue, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { Telemetry } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';

// Attribute names from the messaging semantic conventions (stable names, spelled once here).
export const ATTR = {
  system: 'messaging.system',
  destination: 'messaging.destination.name',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  messageId: 'messaging.message.id',
} as const;

const QUEUE_NAME = 'bullmq.queue.name';
const JOB_ID = 'bullmq.job.id';

type BullSpan = ReturnType<Telemetry['tracer']['startSpan']>;
type Operation = 'send' | 'process';

/** Writes BullMQ's attributes and, for `add`/`process` spans, their semconv twins; never throws into BullMQ. */
class SemconvSpan {
  constructor(
    private readonly span: Span,
    private readonly operationType: Operation | undefined,
  ) {}
  setSpanOnContext(ctx: Context): Context {
    return trace.setSpan(ctx, this.span);
  }
  setAttribute(key: string, value: AttributeValue): void {
    // BullMQ builds its attributes whatever the sampler said; an unsampled span drops them here, unread.
    if (!this.span.isRecording()) return;
    this.span.setAttribute(key, value);
    if (this.operationType) this.mirror(key, value);
  }
  setAttributes(attributes: Attributes): void {
    if (!this.span.isRecording()) return;
    this.span.setAttributes(attributes);
    if (!this.operationType) return;
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
      this.span.setAttribute(ATTR.operationType, this.operationType!);
      this.span.setAttribute(ATTR.operationName, this.operationType === 'send' ? 'add' : 'process');
    } else if (key === JOB_ID && (typeof value === 'string' || typeof value === 'number')) {
      this.span.setAttribute(ATTR.messageId, String(value));
    }
  }
}

/** Set on the context of a BullMQ operation that gets no span: its Redis calls get none either. */
export const UNTRACED_OPERATION = createContextKey('queuelens.untraced-bullmq-operation');

/**
 * Stands in for a BullMQ operation that gets no span. Under an unsampled span the context passes through
 * unchanged (nothing to record, nothing to switch).
 */
const PASS_THROUGH: BullSpan = {
  setSpanOnContext: (ctx: Context) => (trace.getSpan(ctx)?.isRecording() ? ctx.setValue(UNTRACED_OPERATION, true) : ctx),
  setAttribute() {},
  setAttributes() {},
  addEvent() {},
  recordException() {},
  end() {},
} as unknown as BullSpan;

/**
 * `complete` wraps the one Redis script that finishes every successful job (moveToFinished). The consumer span
 * already ends with it, so its own span and the Redis span under it were two more spans per job (of three on the
 * worker) saying what the consumer span says.
 */
const NO_SPAN = new Set(['complete']);

export function createTelemetry(): Telemetry {
  // bullmq-otel keeps the wire format of the propagated context (the job's `tm` option) the one other
  // bullmq-otel producers and consumers use.
  const propagation = new BullMQOtel({ tracerName: 'queuelens' }).contextManager;
  const tracer = trace.getTracer('queuelens');
  return {
    contextManager: {
      getMetadata: (ctx: Context) => propagation.getMetadata(ctx),
      fromMetadata: (active: Context, metadata: string) => propagation.fromMetadata(active, metadata),
      active: () => context.active(),
      // A pass-through operation hands back the active context: nothing to switch.
      with: (ctx: Context, fn: (...args: unknown[]) => unknown) => (ctx === context.active() ? fn() : context.with(ctx, fn)),
    },
    tracer: {
      startSpan(name, options, ctx) {
        const kind = options?.kind as unknown as SpanKind | undefined;
        // BullMQ names spans `<operation> <queue>`.
        if (kind === SpanKind.INTERNAL && NO_SPAN.has(name.slice(0, name.indexOf(' ')))) return PASS_THROUGH;
        const span = tracer.startSpan(name, { kind }, ctx as Context | undefined);
        const op = kind === SpanKind.PRODUCER ? 'send' : kind === SpanKind.CONSUMER ? 'process' : undefined;
        return new SemconvSpan(span, op) as unknown as BullSpan;
      },
    },
  } as Telemetry;
}
