// Starts tracing from the standard OTEL_* variables. The `queuelens` binary imports it first of all, so every
// subcommand traces when they say so; `node --import queuelens/dist/tracing/register.js` (the same module, so it runs
// once) does it for a program of the user's own. Exports only when an OTLP endpoint is configured; otherwise not
// even the SDK is loaded. Tracing that is asked for and cannot work is said on stderr at start-up, never silently.
import { tracingEnv, type TracingEnv } from '../config/tracing-config.js';
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
  // queuelens's own (JSON: tracing-config.ts says why). Inherited by the processes this one starts.
  process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = env.tracesProtocol;
  const where = `${env.endpoint!.variable}=${env.endpoint!.url.origin}`;
  try {
    startTracing({
      serviceName: env.serviceName,
      contextManager: env.contextManager,
      resourceDetectors: env.resourceDetectors,
      collector: env.endpoint!.url,
      onExportError: (msg) =>
        process.stderr.write(`queuelens: tracing: spans not delivered to ${env.endpoint!.url.origin} (${msg}); later export errors are not shown\n`),
    });
    const { probeCollector } = await import('./probe-collector.js');
    // In the background: start-up does not wait for the collector, and a missing one is said once.
    void probeCollector(env.endpoint!.url).then((problem) => {
      if (problem)
        process.stderr.write(`queuelens: tracing requested (${where}) but nothing answers there (${problem}); spans are dropped until a collector listens\n`);
    });
  } catch (err) {
    process.stderr.write(`queuelens: tracing requested (${where}) but it cannot start: ${(err as Error).message}; running without traces\n`);
  }
}
