// Owns the webhook signature scheme, so the sender and any receiver (and our tests) agree on it:
// `X-Queuelens-Signature: v1=<hex HMAC-SHA256(secret, "<unix seconds>.<raw body>")>` next to
// `X-Queuelens-Timestamp: <unix seconds>`. Receivers should reject timestamps older than a few minutes.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-queuelens-signature';
export const TIMESTAMP_HEADER = 'x-queuelens-timestamp';
export const DELIVERY_HEADER = 'x-queuelens-delivery';
export const EVENT_HEADER = 'x-queuelens-event';

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export function verifyWebhook(secret: string, timestamp: string, body: string, signature: string): boolean {
  const expected = Buffer.from(signWebhook(secret, Number(timestamp), body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
