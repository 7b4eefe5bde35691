// Turns tracing on in this test process through the same start-up as production, with an in-memory exporter and
// AsyncLocalStorage (QUEUELENS_TRACE_CONTEXT=async, what every queuelens process but the worker uses). Import it
// FIRST in a test file, before anything loads ioredis or BullMQ.
import { SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { startTracing } from '../../src/tracing/sdk.js';
import { exporter } from './in-memory-spans.js';

startTracing({ serviceName: 'queuelens-test', spanProcessors: [new SimpleSpanProcessor(exporter)], contextManager: 'async' });

export * from './in-memory-spans.js';
