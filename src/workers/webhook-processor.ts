// Owns webhook delivery: a signed JSON POST with a delivery id and a timeout. 2xx is done; 408, 429, 5xx
// and network errors are retried (Retry-After honoured); any other status is permanent. Redirects are not
// followed (they would bypass the SSRF guard).
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { propagation, SpanKind } from '@opentelemetry/api';
import { UnrecoverableError } from 'bullmq';
import { withSpan } from '../tracing/spans.js';
import { RetryLaterError, type Processor } from './create-worker.js';
import { SsrfGuard } from './ssrf-guard.js';
import { DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signWebhook } from './webhook-signature.js';

/** The reason in every dead letter of a webhook that could not be signed, and in the worker's start-up warning. */
export const NO_WEBHOOK_SECRET =
  'webhook job has no secret and the worker has no WEBHOOK_SECRET (--webhook-secret): set it and redrive with `queuelens dlq redrive webhook`';

export interface WebhookProcessorOptions {
  /** Used when a job carries no secret of its own. */
  secret?: string;
  timeoutMs: number;
  allow?: readonly string[];
  /**
   * What delivery ids name when jobs carry no key prefix: BullMQ on PostgreSQL has none (job.prefix is ''), so its
   * schema stands in, as it does for the `prefix` label.
   */
  namespace?: string;
}

const MAX_RESPONSE_BYTES = 64 * 1024;

/** Retry-After as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : Math.max(t - now, 0);
}

export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * `<prefix>:<queue>:<job id>:<created ms>` of the job first enqueued. Stable across retries and redrives (a redriven
 * job names the original in redrivenFrom), so a receiver can drop duplicates; the prefix tells deployments sharing a
 * receiver apart, and the creation time tells apart the jobs that reuse an id once a queue's ids start over (after an
 * obliterate or a flush).
 */
export function webhookDeliveryId(
  job: { prefix: string; queueName: string; id?: string; timestamp: number },
  redrivenFrom?: { originalJobId: string; originalTimestamp?: number },
): string {
  const [id, created] = redrivenFrom ? [redrivenFrom.originalJobId, redrivenFrom.originalTimestamp ?? job.timestamp] : [job.id, job.timestamp];
  return `${job.prefix}:${job.queueName}:${id}:${created}`;
}

export function webhookProcessor(opts: WebhookProcessorOptions): { process: Processor<'webhook'> } {
  const guard = new SsrfGuard(opts.allow);

  const process: Processor<'webhook'> = async (job, data, ctx) => {
    const url = new URL(data.url);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) && !guard.isHostAllowListed(host)) {
      try {
        guard.checkAddress(host);
      } catch (err) {
        throw new UnrecoverableError((err as Error).message);
      }
    }
    const secret = data.secret ?? opts.secret;
    if (!secret) throw new UnrecoverableError(NO_WEBHOOK_SECRET);
    const deliveryId = webhookDeliveryId(
      { prefix: job.prefix || (opts.namespace ?? ''), queueName: job.queueName, id: job.id, timestamp: job.timestamp },
      data.redrivenFrom,
    );
    const body = JSON.stringify({ id: deliveryId, event: data.event, payload: data.payload ?? null });
    const timestamp = Math.floor(Date.now() / 1000);
    const attrs = {
      'http.request.method': 'POST',
      'server.address': url.hostname,
      'server.port': Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
      // No path and no query: Slack, Discord and Teams put the webhook's secret token in the path.
      'url.scheme': url.protocol.slice(0, -1),
      'queuelens.webhook.delivery_id': deliveryId,
      'queuelens.webhook.event': data.event,
    };
    return withSpan(ctx.trace, 'POST', SpanKind.CLIENT, attrs, async (span, spanCtx) => {
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'user-agent': 'queuelens-webhook/1',
        [DELIVERY_HEADER]: deliveryId,
        [EVENT_HEADER]: data.event,
        [SIGNATURE_HEADER]: signWebhook(secret, timestamp, body),
      };
      propagation.inject(spanCtx, headers);
      let res: { status: number; retryAfter?: string };
      try {
        res = await post(url, headers, body, opts.timeoutMs, guard);
      } catch (err) {
        if ((err as { code?: string }).code === 'E_WEBHOOK_TARGET_BLOCKED') throw new UnrecoverableError((err as Error).message);
        throw err;
      }
      span.setAttribute('http.response.status_code', res.status);
      if (res.status >= 200 && res.status < 300) return { status: res.status, deliveryId };
      const msg = `webhook receiver answered ${res.status}`;
      if (isRetryableStatus(res.status)) throw new RetryLaterError(msg, parseRetryAfter(res.retryAfter));
      throw new UnrecoverableError(msg);
    });
  };
  return { process };
}

function post(url: URL, headers: Record<string, string>, body: string, timeoutMs: number, guard: SsrfGuard): Promise<{ status: number; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { method: 'POST', headers, lookup: guard.lookup(url.hostname), timeout: timeoutMs, agent: false }, (res: IncomingMessage) => {
      let seen = 0;
      // Drain (bounded) so the socket closes cleanly; the body itself is not needed.
      res.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen > MAX_RESPONSE_BYTES) res.destroy();
      });
      res.on('close', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }));
    });
    const timer = setTimeout(() => req.destroy(new Error(`webhook timed out after ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    req.on('close', () => clearTimeout(timer));
    req.on('timeout', () => req.destroy(new Error(`webhook timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
