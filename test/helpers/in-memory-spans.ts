// The in-memory exporter the tracing tests read, and span-tree helpers; in-memory-tracing*.ts start the SDK with it.
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';

export const exporter = new InMemorySpanExporter();

export type Span = ReadableSpan;

export const spans = (): Span[] => exporter.getFinishedSpans();
export const parentId = (s: Span): string | undefined => s.parentSpanContext?.spanId;
export const childrenOf = (parent: Span, all = spans()): Span[] => all.filter((s) => parentId(s) === parent.spanContext().spanId);
