// Owns the spans queuelens creates around its own work (HTTP call, SMTP send, export chunk): one helper
// that runs a function inside an active span, records failures and always ends the span.
import { SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import { redactString } from '../log/redact.js';

const tracer = () => trace.getTracer('queuelens');

export async function withSpan<T>(name: string, kind: SpanKind, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      // Error messages may quote a recipient or a URL with credentials: mask before they reach the span.
      const message = redactString((err as Error).message ?? String(err));
      span.recordException({ name: (err as Error).name, message });
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** trace_id/span_id of the active span for pino's mixin, so log lines join their trace. */
export function traceLogFields(): Record<string, string> {
  const ctx = trace.getActiveSpan()?.spanContext();
  if (!ctx || !trace.isSpanContextValid(ctx)) return {};
  return { trace_id: ctx.traceId, span_id: ctx.spanId, trace_flags: `0${ctx.traceFlags.toString(16)}` };
}
