// Owns the spans queuelens creates around its own work (HTTP call, SMTP send, export chunk, redrive): one helper
// that runs a function in a child span of an explicit parent, records failures and always ends the span.
import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { redactString } from '../log/redact.js';

const tracer = () => trace.getTracer('queuelens');

/**
 * The parent is passed, not looked up: worker processes keep no context across `await` (job-context-manager.ts), so
 * `fn` gets the span's context to hand on (trace headers, nested spans). Its synchronous start also runs with that
 * context active, which is what BullMQ's `add` reads for the producer span.
 */
export async function withSpan<T>(
  parent: Context,
  name: string,
  kind: SpanKind,
  attributes: Attributes,
  fn: (span: Span, ctx: Context) => Promise<T>,
): Promise<T> {
  const span = tracer().startSpan(name, { kind, attributes }, parent);
  const ctx = trace.setSpan(parent, span);
  try {
    return await context.with(ctx, fn, undefined, span, ctx);
  } catch (err) {
    // Error messages may quote a recipient or a URL with credentials: mask before they reach the span.
    const message = redactString((err as Error).message ?? String(err));
    span.recordException({ name: (err as Error).name, message });
    span.setStatus({ code: SpanStatusCode.ERROR, message });
    throw err;
  } finally {
    span.end();
  }
}
