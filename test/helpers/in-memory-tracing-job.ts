// Like in-memory-tracing.ts, with the explicit job context of `queuelens worker` (no AsyncLocalStorage). Import it
// FIRST in a test file, before anything loads ioredis or BullMQ.
import { SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { startTracing } from '../../src/tracing/sdk.js';
import { exporter } from './in-memory-spans.js';

startTracing({ serviceName: 'queuelens-test', spanProcessors: [new SimpleSpanProcessor(exporter)], contextManager: 'job' });

export * from './in-memory-spans.js';
