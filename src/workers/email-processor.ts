// Owns sending email jobs: renders the template and delivers it over SMTP, sorting failures into permanent
// (5xx, invalid address: dead-letter now) and transient (connection trouble, 4xx: retry with backoff).
import { SpanKind } from '@opentelemetry/api';
import { UnrecoverableError } from 'bullmq';
import nodemailer from 'nodemailer';
import { withSpan } from '../tracing/spans.js';
import type { Processor } from './create-worker.js';
import { renderEmail } from './email-templates.js';

export interface EmailProcessorOptions {
  smtpUrl: string;
  from: string;
  /** Pooled SMTP connections; match the worker's concurrency. */
  maxConnections?: number;
}

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
}

/** True when sending again cannot succeed. */
export function isPermanentSmtpError(err: SmtpError): boolean {
  if (typeof err.responseCode === 'number') return err.responseCode >= 500;
  // Nodemailer's envelope/message errors come from bad addresses or content, not from the network.
  return err.code === 'EENVELOPE' || err.code === 'EMESSAGE';
}

export function emailProcessor(opts: EmailProcessorOptions): { process: Processor<'email'>; close: () => void } {
  const server = new URL(opts.smtpUrl);
  const transport = nodemailer.createTransport({
    url: opts.smtpUrl,
    pool: true,
    maxConnections: opts.maxConnections ?? 5,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  } as Parameters<typeof nodemailer.createTransport>[0]);

  const process: Processor<'email'> = async (job, data, ctx) => {
    const mail = renderEmail(data.template, data.vars);
    const attrs = { 'server.address': server.hostname, 'server.port': Number(server.port || 25), 'queuelens.email.template': data.template };
    const info = await withSpan(ctx.trace, 'smtp send', SpanKind.CLIENT, attrs, async (span) => {
      try {
        const sent = await transport.sendMail({ from: opts.from, to: data.to, subject: mail.subject, text: mail.text, html: mail.html });
        span.setAttribute('queuelens.email.accepted', sent.accepted.length);
        return sent;
      } catch (err) {
        const e = err as SmtpError;
        if (e.responseCode !== undefined) span.setAttribute('queuelens.smtp.response_code', e.responseCode);
        if (isPermanentSmtpError(e)) throw new UnrecoverableError(`smtp rejected the message permanently (${e.responseCode ?? e.code}): ${e.message}`);
        throw err;
      }
    });
    // Only counts and ids go into the return value: BullMQ copies it into the events stream and span events.
    return { messageId: info.messageId, accepted: info.accepted.length, template: data.template, jobId: job.id };
  };
  return { process, close: () => transport.close() };
}
