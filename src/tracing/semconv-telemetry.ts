// Owns the BullMQ telemetry hook: bullmq-otel for producer -> consumer propagation, decorated so the
// `add` and `process` spans also carry the OpenTelemetry messaging semantic-convention attributes.
import { SpanKind, type Attributes } from '@opentelemetry/api';
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

type BullSpan = ReturnType<Telemetry['tracer']['startSpan']>;

/** Mirrors BullMQ's own attributes into semconv ones as BullMQ sets them; never throws into BullMQ. */
class SemconvSpan {
  constructor(
    private readonly inner: BullSpan,
    private readonly operationType: 'send' | 'process' | undefined,
  ) {}
  setSpanOnContext(ctx: unknown): unknown {
    return this.inner.setSpanOnContext(ctx);
  }
  setAttribute(key: string, value: unknown): void {
    this.inner.setAttribute(key, value as never);
    this.mirror({ [key]: value } as Attributes);
  }
  setAttributes(attributes: Attributes): void {
    this.inner.setAttributes(attributes as never);
    this.mirror(attributes);
  }
  addEvent(name: string, attributes?: Attributes): void {
    this.inner.addEvent(name, attributes as never);
  }
  recordException(exception: unknown, time?: never): void {
    this.inner.recordException(exception as never, time);
  }
  end(): void {
    this.inner.end();
  }
  private mirror(attrs: Attributes): void {
    if (!this.operationType) return;
    const extra: Attributes = {};
    const queue = attrs['bullmq.queue.name'];
    if (typeof queue === 'string') {
      extra[ATTR.system] = 'bullmq';
      extra[ATTR.destination] = queue;
      extra[ATTR.operationType] = this.operationType;
      extra[ATTR.operationName] = this.operationType === 'send' ? 'add' : 'process';
    }
    const id = attrs['bullmq.job.id'];
    if (typeof id === 'string' || typeof id === 'number') extra[ATTR.messageId] = String(id);
    if (Object.keys(extra).length > 0) this.inner.setAttributes(extra as never);
  }
}

export function createTelemetry(): Telemetry {
  const otel = new BullMQOtel({ tracerName: 'queuelens' });
  const tracer = otel.tracer;
  return {
    contextManager: otel.contextManager,
    tracer: {
      startSpan(name, options, context) {
        const span = tracer.startSpan(name, options, context);
        const kind = options?.kind as unknown as SpanKind | undefined;
        const op = kind === SpanKind.PRODUCER ? 'send' : kind === SpanKind.CONSUMER ? 'process' : undefined;
        return new SemconvSpan(span, op) as unknown as BullSpan;
      },
    },
  };
}
