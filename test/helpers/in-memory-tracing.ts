// Turns tracing on in this test process through the same start-up as production, with an in-memory
// exporter. Import it FIRST in a test file, before anything loads ioredis or BullMQ.
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTracing } from '../../src/tracing/sdk.js';

export const exporter = new InMemorySpanExporter();
startTracing({ serviceName: 'queuelens-test', spanProcessors: [new SimpleSpanProcessor(exporter)] });

export type Span = ReadableSpan;

export const spans = (): Span[] => exporter.getFinishedSpans();
export const parentId = (s: Span): string | undefined => s.parentSpanContext?.spanId;
export const childrenOf = (parent: Span, all = spans()): Span[] => all.filter((s) => parentId(s) === parent.spanContext().spanId);
