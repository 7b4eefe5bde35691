// Owns the OpenTelemetry SDK set-up shared by the register module, tests and benchmarks: which
// instrumentations run and how they are made safe (no payloads in db statements, no orphan Redis spans).
import { createRequire } from 'node:module';
import { context, diag, DiagLogLevel, trace } from '@opentelemetry/api';
import type { Sampler, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { NodeSDK, resources } from '@opentelemetry/sdk-node';
import type { TraceContextMode } from '../config/tracing-config.js';
import { JobContextManager } from './job-context-manager.js';
import { probeCollector } from './probe-collector.js';
import { enableTracing } from './state.js';

export interface TracingOptions {
  serviceName?: string;
  /** Default: the SDK builds the exporter from OTEL_* variables. */
  spanProcessors?: SpanProcessor[];
  traceExporter?: SpanExporter;
  /** Default: from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, else parent-based always-on. */
  sampler?: Sampler;
  /** `job`: explicit propagation, no AsyncLocalStorage (worker processes); `async` (default): AsyncLocalStorage. */
  contextManager?: TraceContextMode;
  /** Names as in OTEL_NODE_RESOURCE_DETECTORS; default: the SDK's default set (env, process, host). */
  resourceDetectors?: readonly string[];
  /**
   * Told once when spans could not be delivered (collector down, refused, wrong URL), including at shutdown; the SDK
   * itself says nothing unless OTEL_LOG_LEVEL is set. Default: silent.
   */
  onExportError?: (message: string) => void;
  /**
   * The collector's URL: when nothing answers there at shutdown, the final flush is skipped (said through
   * onExportError) instead of holding a finished command for the exporter's retries, ~10 s.
   */
  collector?: URL;
}

// The process detector puts the whole command line (process.command_args, process.command_line) on the resource,
// and the resource goes out with every batch: a Redis password, SMTP credentials or an admin token given as a
// flag would reach the tracing backend. The executable path and the process owner say nothing a trace needs either.
const UNSAFE_PROCESS_ATTRIBUTES = ['process.command_args', 'process.command_line', 'process.executable.path', 'process.owner'];

const processDetectorWithoutSecrets: resources.ResourceDetector = {
  detect(config) {
    const detected = resources.processDetector.detect(config);
    const attributes = { ...detected.attributes };
    for (const key of UNSAFE_PROCESS_ATTRIBUTES) delete attributes[key];
    return { ...detected, attributes };
  },
};

const DETECTORS: Record<string, resources.ResourceDetector> = {
  env: resources.envDetector,
  host: resources.hostDetector,
  os: resources.osDetector,
  process: processDetectorWithoutSecrets,
  serviceinstance: resources.serviceInstanceIdDetector,
};

/** The detectors the SDK would pick from these names, with the process detector's secrets taken out. */
export function resourceDetectors(names: readonly string[] = ['env', 'process', 'host']): resources.ResourceDetector[] {
  if (names.includes('none')) return [];
  if (names.includes('all')) return Object.values(DETECTORS);
  return names.flatMap((n) => DETECTORS[n] ?? []);
}

/**
 * Redis spans only under a span that is recorded: under an unsampled job the instrumentation would still
 * build attributes and a span per command for nothing (measured: most of tracing's cost at 10% sampling).
 */
class SampledIORedisInstrumentation extends IORedisInstrumentation {
  static {
    const proto = IORedisInstrumentation.prototype as unknown as Record<string, (original: Fn, version: string) => Fn>;
    const traceSendCommand = proto._traceSendCommand;
    if (typeof traceSendCommand === 'function') {
      (SampledIORedisInstrumentation.prototype as unknown as typeof proto)._traceSendCommand = function (this: unknown, original: Fn, version: string): Fn {
        const traced = traceSendCommand.call(this, original, version);
        return function (this: unknown, ...args: unknown[]) {
          return trace.getSpan(context.active())?.isRecording() ? traced.apply(this, args) : original.apply(this, args);
        };
      };
    }
  }
}
type Fn = (...args: unknown[]) => unknown;

export function ioredisInstrumentation(): IORedisInstrumentation {
  return new SampledIORedisInstrumentation({
    // Only Redis calls made while a job or request is traced: the worker's idle BZPOPMIN loop would
    // otherwise emit a root span every few seconds.
    requireParentSpan: true,
    // Arguments carry job data (addresses, webhook secrets); the command name is enough.
    dbStatementSerializer: (cmd) => cmd,
  });
}

/** Starts the SDK and turns BullMQ telemetry on; returns the flush-and-stop function. */
export function startTracing(opts: TracingOptions = {}): () => Promise<void> {
  const job = opts.contextManager === 'job';
  const sdk = new NodeSDK({
    serviceName: opts.serviceName,
    traceExporter: opts.traceExporter,
    spanProcessors: opts.spanProcessors,
    sampler: opts.sampler,
    resourceDetectors: resourceDetectors(opts.resourceDetectors),
    contextManager: job ? new JobContextManager() : undefined,
    // With the job context manager no span is active when BullMQ's commands go out (each follows an `await`), so the
    // instrumentation would look at every command of the worker and record none: it is not loaded.
    instrumentations: job ? [] : [ioredisInstrumentation()],
    // Metrics and logs go through Prometheus and pino; only traces leave through OTLP.
    metricReaders: [],
    logRecordProcessors: [],
  });
  let told = false;
  const report = (message: string) => {
    if (told || !opts.onExportError) return;
    told = true;
    opts.onExportError(message);
  };
  // OTEL_LOG_LEVEL set: the user chose the SDK's own diagnostics; leave them alone.
  if (opts.onExportError && !process.env.OTEL_LOG_LEVEL) {
    const quiet = () => undefined;
    diag.setLogger(
      {
        error: (msg, ...args) => report([msg, ...args.map((a) => (a instanceof Error ? a.message : String(a)))].join(' ')),
        warn: quiet,
        info: quiet,
        debug: quiet,
        verbose: quiet,
      },
      DiagLogLevel.ERROR,
    );
  }
  sdk.start();
  // The instrumentation patches ioredis from a require() hook, but an ESM `import 'ioredis'` bypasses it.
  // Loading it through require() here patches the one shared CommonJS module before anything else uses it.
  if (!job) createRequire(import.meta.url)('ioredis');
  // A collector that is down must not turn a finished command into a crash at exit: said once, then ignored.
  const stop = async () => {
    const problem = opts.collector && (await probeCollector(opts.collector, 1000));
    if (problem) {
      report(`${problem}; spans of the last moments dropped`);
      return;
    }
    await sdk.shutdown().catch((err: Error) => report(err.message));
  };
  enableTracing(stop, job);
  return stop;
}
