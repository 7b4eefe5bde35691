// Owns the webhook signature scheme, so the sender and any receiver (and our tests) agree on it. Stripe-style:
// `X-Queuelens-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. The timestamp is inside
// the signed text, so a receiver that rejects old timestamps (verifyWebhook does, by default) cannot be replayed a
// captured delivery later; `X-Queuelens-Delivery` stays the same for every attempt and redrive, so it can drop the
// duplicates that retries make inside the window.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { MIN_SECRET_LENGTH } from '../jobs/schemas.js';

export const SIGNATURE_HEADER = 'x-queuelens-signature';
export const DELIVERY_HEADER = 'x-queuelens-delivery';
export const EVENT_HEADER = 'x-queuelens-event';

/** How far a signature's timestamp may be from the receiver's clock, either way (Stripe's default too). */
export const DEFAULT_TOLERANCE_SECONDS = 300;

const hmac = (secret: string, timestamp: number, body: string) => createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');

/** The signature header's value for a body sent at `timestamp` (Unix seconds). */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${hmac(secret, timestamp, body)}`;
}

export interface VerifyOptions {
  /** Default DEFAULT_TOLERANCE_SECONDS. */
  toleranceSeconds?: number;
  /** The receiver's clock, Unix seconds (default: now). */
  now?: number;
}

/**
 * True when `header` (the X-Queuelens-Signature value) carries a `v1` signature of `t.body` under `secret` and `t` is
 * within the tolerance of now. Several `v1=` entries are accepted (any one may match), as during a key rotation.
 * Constant-time comparison; pass the raw body exactly as received, before any JSON parsing. Throws on an empty or
 * short secret (an unset environment variable, say): anyone could sign with it, so nothing would be verified.
 */
export function verifyWebhook(secret: string, body: string, header: string, opts: VerifyOptions = {}): boolean {
  if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
    throw new TypeError(
      `verifyWebhook: the secret is ${typeof secret !== 'string' || secret === '' ? 'empty' : `${secret.length} characters`}; pass the signing secret the sender uses (WEBHOOK_SECRET or the job's secret, at least ${MIN_SECRET_LENGTH} characters)`,
    );
  }
  let timestamp: number | undefined;
  const given: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const [key, value] = [part.slice(0, eq).trim(), part.slice(eq + 1).trim()];
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1') given.push(value);
  }
  if (timestamp === undefined || given.length === 0) return false;
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (opts.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return false;
  const expected = Buffer.from(hmac(secret, timestamp, body));
  let ok = false;
  for (const g of given) {
    const b = Buffer.from(g);
    if (b.length === expected.length && timingSafeEqual(expected, b)) ok = true;
  }
  return ok;
}
