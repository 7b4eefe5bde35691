// Loaded with `node --import queuelens/dist/tracing/register.js` so the SDK is running before ioredis and
// BullMQ are first required (instrumentation patches modules as they load). Exports only when an OTLP
// endpoint is configured; otherwise tracing stays off and costs nothing.
import { tracingEnv } from '../config/worker-config.js';
import { startTracing } from './sdk.js';

const env = tracingEnv();
if (env.exportEnabled) {
  // OTLP/HTTP exporter, batching and sampler all come from the standard OTEL_* variables.
  startTracing({ serviceName: env.serviceName });
}
