// Loaded with `node --import queuelens/dist/tracing/register.js` so the SDK is running before ioredis and
// BullMQ are first required (instrumentation patches modules as they load). Exports only when an OTLP
// endpoint is configured; otherwise not even the SDK is loaded.
import { tracingEnv } from '../config/worker-config.js';

const env = tracingEnv();
if (env.exportEnabled) {
  const { startTracing } = await import('./sdk.js');
  // OTLP/HTTP exporter, batching and sampler all come from the standard OTEL_* variables.
  startTracing({ serviceName: env.serviceName });
}
