// Owns the rule that secrets and personal data never reach a log line: credentials in URLs, the secret paths of
// webhook services' URLs, bearer tokens and email addresses are masked in every string a logger writes.

// The look-behinds start each match at the beginning of a run only: scanning on from every character of a long
// run would be quadratic (a 100 KB line of `a.a.a.` took seconds).
const URL_CREDENTIALS = /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/)([^/\s:@]*):([^/\s@]+)@/gi;
const URL_USER_ONLY = /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/)([^/\s:@]+)@/gi;
// Webhook services that put the secret in the URL's path or query (Slack's /services/T…/B…/<secret>, Discord's
// /api/webhooks/<id>/<token>, Teams' webhookb2 and Power Automate's ?sig=, Google Chat's ?key=&token=, a Telegram bot
// token): everything after the host is masked, so what is left says where the hook goes and nothing that opens it.
const WEBHOOK_HOSTS = String.raw`hooks\.slack\.com|(?:[a-z0-9-]+\.)?discord(?:app)?\.com|(?:[a-z0-9-]+\.)+webhook\.office\.com|outlook\.office(?:365)?\.com|(?:[a-z0-9-]+\.)+logic\.azure\.com|chat\.googleapis\.com|api\.telegram\.org|hooks\.zapier\.com`;
const WEBHOOK_URL = new RegExp(String.raw`(?<![a-z0-9+.-])(https?:\/\/(?:[^\s/?#@]*@)?(?:${WEBHOOK_HOSTS})(?::\d+)?)[/?#][^\s"'<>\\]*`, 'gi');
const BEARER = /\b(bearer)\s+[A-Za-z0-9._~+/=-]+/gi;
// An email address, read by its grammar (RFC 5322 local part, RFC 6531 UTF-8) rather than a guess at usual
// characters. The local part is a run of atext (any non-ASCII character counts, as RFC 6531 says), dots, quoted
// strings and comments (`a."b c"`, `john.smith(comment)`), started only where a run starts, so `o'brien`,
// `a!#$%&'*+/=?^_`{|}~-b`, `jo☃hn` and `😀user` are masked whole. The domain is any host name, dotless or not
// (`localhost`, `intranet`, `my_host.example.com`, `example.com-billing`) whose last label holds a letter (so a
// version such as `queuelens@1.2.3` is no address), or an address literal; `%40` (a URL-encoded `@`) counts as `@`.
// Text next to an address that could belong to it is masked with it: a log line may lose a word, never keep part of
// an address. (A run starting `://` is a URL's authority, masked above.) Every quantifier is unambiguous (quoted
// strings and comments start with characters atext lacks), a match starts only where a run starts and takes at most
// four quoted strings or comments, so a long line that is no address costs linear time.
const ATEXT = String.raw`\p{L}\p{M}\p{N}\P{ASCII}!#$%&'*+/=?^_\x60{|}~\-`;
// A quoted string is a word of the local part only before a dot, a comment or the `@` (`"to":"x@…"` in JSON is not).
const QUOTED = String.raw`"(?:[^"\\\r\n]|\\.)*"(?=[.(@]|%40)`;
const COMMENT = String.raw`\([^()\r\n]*\)`;
const LOCAL = String.raw`(?:(?<![${ATEXT}.])(?!(?<=:)\/)(?=[${ATEXT}.])|(?<![${ATEXT}.")])(?=["(]))[${ATEXT}.]*(?:(?:${QUOTED}|${COMMENT})[${ATEXT}.]*){0,4}`;
const LABEL = String.raw`[\p{L}\p{M}\p{N}_](?:[\p{L}\p{M}\p{N}_-]*[\p{L}\p{M}\p{N}_])?`;
const DOMAIN = String.raw`(?:(?:${LABEL}\.)*(?=[\p{N}_-]*[\p{L}\p{M}])${LABEL}|\[[^\]\s]{1,64}\])`;
const EMAIL = new RegExp(String.raw`${LOCAL}(@|%40)(${DOMAIN})(?![\p{L}\p{M}\p{N}_-])`, 'giu');

/** Keys whose values are always replaced, whatever they hold. */
export const SECRET_KEYS = /^(password|pass|passwd|secret|token|authorization|auth|apikey|api_key|adminToken|admin_token|signingSecret|cookie)$/i;

export function redactString(text: string): string {
  return text
    .replace(URL_CREDENTIALS, (_m, scheme: string, user: string) => `${scheme}${user ? `${user}:` : ':'}***@`)
    .replace(URL_USER_ONLY, (_m, scheme: string) => `${scheme}***@`)
    .replace(WEBHOOK_URL, '$1/***')
    .replace(BEARER, '$1 ***')
    .replace(EMAIL, '***$1$2');
}

/** Returns a copy with every string masked and secret-named keys replaced; bounded in depth and width. */
export function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => redactValue(v, depth + 1));
  if (value instanceof Error) {
    return {
      type: value.name,
      message: redactString(value.message),
      stack: value.stack ? redactString(value.stack) : undefined,
      code: (value as { code?: unknown }).code,
    };
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) ? '***' : redactValue(v, depth + 1);
  return out;
}

/** A URL safe to show: the password (and a lone user) replaced by ***. */
export function safeUrl(url: string): string {
  return redactString(url);
}

/**
 * A copy of a JSON value with every string masked and secret-named keys replaced, at any width (unlike redactValue,
 * for logs, which cuts arrays short): for responses whose shape a client relies on, such as Bull Board's API.
 */
export function redactJson(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 64) return '***';
  if (Array.isArray(value)) return value.map((v) => redactJson(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) && v !== null && v !== undefined ? '***' : redactJson(v, depth + 1);
  return out;
}
