// Owns the rule that secrets and personal data never reach a log line: credentials in URLs,
// bearer tokens and email addresses are masked in every string a logger writes.

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^/\s:@]*):([^/\s@]+)@/gi;
const URL_USER_ONLY = /\b([a-z][a-z0-9+.-]*:\/\/)([^/\s:@]+)@/gi;
const BEARER = /\b(bearer)\s+[A-Za-z0-9._~+/=-]+/gi;
const EMAIL = /[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})/g;

/** Keys whose values are always replaced, whatever they hold. */
export const SECRET_KEYS = /^(password|pass|passwd|secret|token|authorization|auth|apikey|api_key|adminToken|admin_token|signingSecret|cookie)$/i;

export function redactString(text: string): string {
  return text
    .replace(URL_CREDENTIALS, (_m, scheme: string, user: string) => `${scheme}${user ? `${user}:` : ':'}***@`)
    .replace(URL_USER_ONLY, (_m, scheme: string) => `${scheme}***@`)
    .replace(BEARER, '$1 ***')
    .replace(EMAIL, '***@$1');
}

/** Returns a copy with every string masked and secret-named keys replaced; bounded in depth and width. */
export function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => redactValue(v, depth + 1));
  if (value instanceof Error) {
    return { type: value.name, message: redactString(value.message), stack: value.stack ? redactString(value.stack) : undefined, code: (value as { code?: unknown }).code };
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) ? '***' : redactValue(v, depth + 1);
  return out;
}

/** A URL safe to show: the password (and a lone user) replaced by ***. */
export function safeUrl(url: string): string {
  return redactString(url);
}
