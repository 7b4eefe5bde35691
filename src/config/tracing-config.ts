// The tracing settings every process reads from the environment (OTEL_* and QUEUELENS_TRACE_CONTEXT) before
// its command line is parsed: whether spans are exported, where to, in which encoding, and how context travels.
import { ConfigError } from './options.js';

export type TraceContextMode = 'job' | 'async';

export interface TracingEnv {
  exportEnabled: boolean;
  serviceName: string;
  /**
   * How the active span follows async code: `job` (worker processes: the job's context is passed on explicitly,
   * no AsyncLocalStorage), `async` (AsyncLocalStorage: everything after an `await` keeps its parent, at ~10% of a
   * worker's throughput on Node 20). From QUEUELENS_TRACE_CONTEXT; default `job` for `queuelens worker`, `async` otherwise.
   */
  contextManager: TraceContextMode;
  /**
   * The OTLP encoding of exported spans: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL, else
   * `http/json`, not the SDK's `http/protobuf`: encoding and sending a span costs a worker ~5 µs as JSON and ~11.5 µs
   * as protobuf with the exporters this SDK ships (docs/benchmarks.md, Workers). Collectors take both on /v1/traces.
   */
  tracesProtocol: OtlpProtocol;
  /** OTEL_NODE_RESOURCE_DETECTORS as a list (`env`, `host`, `os`, `process`, `serviceinstance`, `all`, `none`); unset = the SDK's default. */
  resourceDetectors?: string[];
  /** Where spans go (the traces endpoint, else the base endpoint); undefined when nothing is exported. */
  endpoint?: { variable: string; url: URL };
}

const OTLP_PROTOCOLS = ['http/json', 'http/protobuf', 'grpc'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/**
 * OTEL_* variables are read by the OpenTelemetry SDK itself; queuelens only needs to know whether to export, how
 * the context travels and which OTLP encoding to default to. Read by the register module before the CLI exists, so there is no flag: like OTEL_*, env only.
 */
export function tracingEnv(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = process.argv): TracingEnv {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const raw = env.QUEUELENS_TRACE_CONTEXT?.trim();
  if (raw && raw !== 'job' && raw !== 'async') {
    throw new ConfigError(`QUEUELENS_TRACE_CONTEXT must be "job" or "async" (got ${JSON.stringify(raw)}); unset it for the default`);
  }
  // Empty counts as unset, as the SDK reads it.
  const protocolVar = ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL'].find((k) => env[k]?.trim());
  const protocol = protocolVar ? env[protocolVar]!.trim() : 'http/json';
  if (!(OTLP_PROTOCOLS as readonly string[]).includes(protocol)) {
    // The SDK would warn and fall back to protobuf: a collector set up for something else would see nothing.
    throw new ConfigError(`${protocolVar} must be one of ${OTLP_PROTOCOLS.join(', ')} (got ${JSON.stringify(protocol)}); unset it for http/json`);
  }
  // argv: [node, script, subcommand, ...]
  const isWorker = argv[2] === 'worker';
  const exportEnabled = Boolean(endpoint) && env.OTEL_SDK_DISABLED !== 'true' && env.OTEL_TRACES_EXPORTER !== 'none';
  const variable = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  let url: URL | undefined;
  if (exportEnabled) {
    // The SDK silently falls back to http://localhost:4318 for an endpoint that is not a URL: spans would vanish.
    url = URL.canParse(endpoint!.trim()) ? new URL(endpoint!.trim()) : undefined;
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new ConfigError(
        `${variable} must be an http:// or https:// URL such as http://otel-collector:4318 (got ${JSON.stringify(endpoint)}); unset it to trace nothing`,
      );
    }
  }
  return {
    exportEnabled,
    ...(url ? { endpoint: { variable, url } } : {}),
    serviceName: env.OTEL_SERVICE_NAME ?? 'queuelens',
    contextManager: (raw as TraceContextMode | undefined) || (isWorker ? 'job' : 'async'),
    tracesProtocol: protocol as OtlpProtocol,
    resourceDetectors: env.OTEL_NODE_RESOURCE_DETECTORS?.trim()
      ? env.OTEL_NODE_RESOURCE_DETECTORS.split(',')
          .map((d) => d.trim())
          .filter(Boolean)
      : undefined,
  };
}
