// Loaded with `node --import queuelens/dist/tracing/register.js` so the SDK is running before ioredis and
// BullMQ are first required (instrumentation patches modules as they load). Exports only when an OTLP
// endpoint is configured; otherwise not even the SDK is loaded.
import { tracingEnv, type TracingEnv } from '../config/worker-config.js';
import { ConfigError } from '../config/options.js';

let env: TracingEnv;
try {
  env = tracingEnv();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`queuelens: ${err.message}\n`);
  process.exit(2);
}
if (env.exportEnabled) {
  const { startTracing } = await import('./sdk.js');
  // OTLP exporter, batching and sampler all come from the standard OTEL_* variables; only the protocol's default is
  // queuelens's own (JSON: worker-config.ts says why). Inherited by the processes this one starts.
  process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = env.tracesProtocol;
  startTracing({ serviceName: env.serviceName, contextManager: env.contextManager, resourceDetectors: env.resourceDetectors });
}
