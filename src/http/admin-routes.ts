// Owns the sidecar's admin surface: dead-letter listing and redrive over HTTP, and Bull Board at
// /admin/queues. A Fastify plugin registered by buildApp only when an admin token is configured; every route
// in it sits behind one bearer-token or session check, so an unauthenticated caller learns nothing but "401".
// Guessing is throttled per client, sessions live in Redis (logout ends them everywhere), writes are off unless
// enabled and each one is logged with who and what, and Bull Board's answers are masked like logs.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Logger } from '../log/logger.js';
import { redactJson, redactString } from '../log/redact.js';
import type { RedisClient } from '../redis/connection.js';
import { ownKeys } from '../redis/keys.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import { DeadLetters, isDeadLetterRecord, NOT_A_DEAD_LETTER, type RedriveOutcome } from '../dead-letters/dead-letters.js';
import { AuthThrottle, type ThrottleOptions } from './auth-throttle.js';

export interface AdminOptions {
  token: string;
  /** --admin-writes: Bull Board actions and non-dry-run redrives; off (the default) = read-only. */
  writes?: boolean;
  /** Brute-force throttling of failed authentication per client (default: 20 failures a minute). */
  throttle?: ThrottleOptions;
  connection: RedisClient;
  prefixes: readonly string[];
  /** --own-prefix, shared with the workers that write the dead letters. */
  ownPrefix: string;
  /** Queues Bull Board shows; read on each board request so newly discovered queues appear. */
  queues: () => readonly QueueRef[];
  log: Logger;
}

const MAX_REDRIVE = 10_000;

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time: hashing first makes both sides the same length, so not even the token's length leaks. */
const sameSecret = (given: string, token: string) => timingSafeEqual(digest(given), digest(token));

export function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return sameSecret(m?.[1] ?? '', token) && m !== null;
}

// A browser cannot send a bearer header to Bull Board, so /admin/login trades the token for a session cookie:
// `<expiry ms>.<session id>.<HMAC-SHA256 of both, keyed by the token>`. The session also exists in Redis under the own
// prefix (every replica sees it, logout deletes it), so a copied cookie stops working at logout; the HMAC binds it to
// the token, so changing the token ends every session. HttpOnly, SameSite=Strict, scoped to /admin.
export const SESSION_COOKIE = 'queuelens_admin';
const SESSION_MS = 12 * 3600_000;
const sessionMac = (token: string, expiry: number, id: string) => createHmac('sha256', token).update(`queuelens-admin-session:${expiry}.${id}`).digest('hex');

export function sessionValue(token: string, now: number, id = randomBytes(16).toString('hex')): string {
  const expiry = now + SESSION_MS;
  return `${expiry}.${id}.${sessionMac(token, expiry, id)}`;
}

/** The session id of a cookie value made under `token` and not expired at `now`; whether it is still open is Redis's to say. */
export function sessionId(value: string | undefined, token: string, now: number): string | undefined {
  const m = /^(\d{1,16})\.([0-9a-f]{32})\.([0-9a-f]{64})$/.exec(value ?? '');
  if (!m) return undefined;
  const expiry = Number(m[1]);
  return sameSecret(m[3]!, sessionMac(token, expiry, m[2]!)) && expiry > now ? m[2] : undefined;
}

export function sessionValid(value: string | undefined, token: string, now: number): boolean {
  return sessionId(value, token, now) !== undefined;
}

/** Redis names a session by a hash of its id, logs by the start of that hash: never the id (half of what opens it). */
const sessionHash = (id: string) => createHash('sha256').update(id).digest('hex');
const sessionTag = (id: string) => sessionHash(id).slice(0, 12);

/**
 * Whether the request reached us over TLS: the socket itself, or a proxy saying so (`X-Forwarded-Proto` in any case
 * and at any position of a list, `Forwarded: proto=https`). Believing a proxy here can only make the cookie stricter.
 */
export function cameOverTls(req: FastifyRequest): boolean {
  if (req.protocol === 'https' || (req.raw.socket as TLSSocket | undefined)?.encrypted) return true;
  const xfp = req.headers['x-forwarded-proto'];
  const protos = (Array.isArray(xfp) ? xfp.join(',') : (xfp ?? '')).split(',').map((p) => p.trim().toLowerCase());
  if (protos.includes('https')) return true;
  const forwarded = req.headers.forwarded;
  return typeof forwarded === 'string' && /(?:^|[;,\s])proto="?https"?(?:$|[;,\s])/i.test(forwarded);
}

/** Who made an authenticated request, for the audit log. */
interface Who {
  /** Not `auth`: the log redaction masks a field of that name. */
  via: 'bearer' | 'session';
  session?: string;
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The path a request is routed on: the pattern of the route Fastify matched (percent-decoded, slashes and case as
 * registered), so `/admin/%71ueues/…/update-dat%61` is judged as `/admin/queues/…/update-data`. Every hook of this
 * plugin runs for one of its routes, so the pattern is there; the decoded path is a fallback that fails the same way.
 */
function routeOf(req: FastifyRequest): string {
  const url = req.routeOptions.url;
  if (url !== undefined) return url;
  const raw = req.url.split('?')[0] ?? req.url;
  let decoded = raw;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    // Not valid percent-encoding: Fastify answers 400 before any route.
  }
  return decoded.replace(/\/{2,}/g, '/').toLowerCase();
}

const READ_ONLY_DETAIL = 'the admin surface is read-only; start the sidecar with --admin-writes (QUEUELENS_ADMIN_WRITES=true) to allow changes';

/** A cookie-authenticated request that changes something must come from this origin (SameSite aside). */
function crossOrigin(req: FastifyRequest): boolean {
  const origin = req.headers.origin;
  if (origin === undefined || origin === 'null') return origin === 'null';
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

const loginPage = (message: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>queuelens admin</title>
<style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}input,button{font:inherit;padding:.4rem}input{width:100%;box-sizing:border-box}p.e{color:#b00020}</style>
</head><body><h1>queuelens admin</h1>
${message ? `<p class="e">${message}</p>` : ''}<form method="post" action="/admin/login">
<label for="token">Admin token (QUEUELENS_ADMIN_TOKEN)</label><p><input id="token" name="token" type="password" autocomplete="current-password" required autofocus></p>
<button type="submit">Open Bull Board</button></form></body></html>`;

/**
 * Queue names and job ids end up inside Redis key names: no ':' (it would address another key), no path
 * separators, '..', control characters or unbounded length (they appear in logs and in Bull Board URLs).
 */
// eslint-disable-next-line no-control-regex -- refusing control characters is what this pattern is for
const KEY_PART = /^(?!.*\.\.)[^:/\\\u0000-\u001f\u007f]{1,200}$/;
const keyPart = (what: string) => z.string().regex(KEY_PART, `a ${what}: 1 to 200 characters, without ':', '/', '\\', '..' or control characters`);
const queueParam = z.object({ queue: keyPart('queue name').refine((q) => !q.endsWith('-dlq'), 'name the source queue, not its -dlq') });
const listQuery = z.object({
  prefix: z.string().optional(),
  since: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
const redriveBody = z
  .object({
    prefix: z.string().optional(),
    ids: z.array(keyPart('dead-letter job id')).min(1).max(MAX_REDRIVE).optional(),
    since: z.number().int().min(0).optional(),
    all: z.boolean().optional(),
    dryRun: z.boolean().default(false),
  })
  .refine((b) => b.ids !== undefined || b.since !== undefined || b.all === true, 'choose ids, since or all');

function badRequest(reply: FastifyReply, err: z.ZodError) {
  const issue = err.issues[0];
  return reply.code(400).send({ error: 'bad request', field: issue?.path.join('.') || '(body)', detail: issue?.message });
}

export async function adminRoutes(app: FastifyInstance, opts: AdminOptions): Promise<void> {
  await app.register(cookie);
  await app.register(formbody, { bodyLimit: 4096 });
  const html = (reply: FastifyReply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");
  const throttle = new AuthThrottle(opts.throttle);
  const who = new WeakMap<FastifyRequest, Who>();
  const sessionKey = (id: string) => ownKeys.adminSession(opts.ownPrefix, sessionHash(id));
  const pathOf = (req: FastifyRequest) => req.url.split('?')[0] ?? req.url;

  /** Counts and logs a failed authentication (never the value tried). */
  const failed = (req: FastifyRequest, via: 'bearer' | 'form') => {
    throttle.fail(req.ip, Date.now());
    opts.log.warn(
      { ip: req.ip, via, method: req.method, path: redactString(pathOf(req)) },
      via === 'form' ? 'admin login with a wrong token' : 'admin request with a wrong Authorization header',
    );
  };
  /** Answers 429 while the client is throttled; the block is logged once. */
  const refuseIfThrottled = (req: FastifyRequest, reply: FastifyReply): FastifyReply | undefined => {
    const now = Date.now();
    const ms = throttle.blockedFor(req.ip, now);
    if (ms <= 0) return undefined;
    if (throttle.announce(req.ip, now, ms)) {
      opts.log.warn(
        { ip: req.ip, failures: throttle.maxFailures, windowSeconds: throttle.windowMs / 1000, retryAfterSeconds: Math.ceil(ms / 1000) },
        'admin authentication throttled: too many failed attempts from this client',
      );
    }
    return reply
      .code(429)
      .header('retry-after', String(Math.ceil(ms / 1000)))
      .header('cache-control', 'no-store')
      .send({ error: 'too many failed attempts', retryAfterSeconds: Math.ceil(ms / 1000) });
  };
  const openSession = async (req: FastifyRequest): Promise<string | undefined> => {
    const id = sessionId(req.cookies[SESSION_COOKIE], opts.token, Date.now());
    if (!id) return undefined;
    try {
      return (await opts.connection.exists(sessionKey(id))) === 1 ? id : undefined;
    } catch (err) {
      // Fails closed: without Redis no session can be checked (the bearer header still works).
      opts.log.warn({ err: redactString(String(err)) }, 'admin session not checked: Redis did not answer');
      return undefined;
    }
  };

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    // Judged on the route Fastify matched, never the raw URL: `update-dat%61`, `/admin/%71ueues` or `//` spell the same
    // route differently, and a guard comparing the raw text would let them through.
    const path = routeOf(req);
    if (path === '/admin/logout' || (path === '/admin/login' && req.method === 'GET')) return;
    const header = req.headers.authorization;
    // A valid session is not a guess, so it is never throttled: an operator already logged in keeps working while
    // someone else guesses from the same address (a shared proxy or NAT). A cookie that is not valid counts for nothing.
    if (header === undefined && path !== '/admin/login') {
      const id = await openSession(req);
      if (id !== undefined) {
        if (!READS.has(req.method) && crossOrigin(req))
          return reply.code(403).header('cache-control', 'no-store').send({ error: 'cross-origin request refused' });
        who.set(req, { via: 'session', session: sessionTag(id) });
      }
    }
    if (!who.has(req)) {
      if (refuseIfThrottled(req, reply)) return reply;
      if (path === '/admin/login') return;
      if (header !== undefined) {
        if (!tokenMatches(header, opts.token)) {
          failed(req, 'bearer');
          return reply
            .code(401)
            .header('www-authenticate', 'Bearer realm="queuelens-admin"')
            .header('cache-control', 'no-store')
            .send({ error: 'unauthorized' });
        }
        who.set(req, { via: 'bearer' });
      }
    }
    if (!who.has(req)) {
      // A person opening Bull Board gets the login form; API clients get a plain 401.
      if (req.method === 'GET' && path.startsWith('/admin/queues') && req.headers.accept?.includes('text/html')) return reply.redirect('/admin/login', 303);
      return reply.code(401).header('www-authenticate', 'Bearer realm="queuelens-admin"').header('cache-control', 'no-store').send({ error: 'unauthorized' });
    }
    // Bull Board's writes are refused here, before Bull Board (its own read-only mode hides the buttons). Editing a
    // job's data is refused even with writes on: Bull Board shows it masked, and saving would store the masks.
    if (path.startsWith('/admin/queues') && !READS.has(req.method)) {
      if (!opts.writes) return reply.code(403).header('cache-control', 'no-store').send({ error: 'read-only', detail: READ_ONLY_DETAIL });
      if (/\/update-data\/?$/.test(path))
        return reply
          .code(403)
          .header('cache-control', 'no-store')
          .send({ error: 'refused', detail: 'job data is shown masked; edit it with your own producer code, not through Bull Board' });
    }
  });

  // Every authenticated request that may change something, answered or refused: who, what, and the outcome; never a body.
  app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
    const by = who.get(req);
    if (!by || READS.has(req.method)) return;
    opts.log.info({ ...by, ip: req.ip, method: req.method, path: redactString(pathOf(req)), status: reply.statusCode }, 'admin write');
  });

  app.get('/admin/login', async (_req, reply) => html(reply).send(loginPage('')));
  app.post('/admin/login', async (req, reply) => {
    const token = (req.body as Record<string, unknown> | undefined)?.token;
    if (typeof token !== 'string' || !sameSecret(token, opts.token)) {
      failed(req, 'form');
      return html(reply.code(401)).send(loginPage('That is not the admin token.'));
    }
    const id = randomBytes(16).toString('hex');
    const now = Date.now();
    try {
      await opts.connection.set(sessionKey(id), String(now + SESSION_MS), 'PX', SESSION_MS);
    } catch (err) {
      opts.log.warn({ err: redactString(String(err)) }, 'admin login refused: the session could not be stored in Redis');
      return html(reply.code(503)).send(loginPage('Sessions are kept in Redis, which did not answer. Try again, or use the bearer header.'));
    }
    opts.log.info({ ip: req.ip, session: sessionTag(id) }, 'admin login');
    reply.setCookie(SESSION_COOKIE, sessionValue(opts.token, now, id), {
      path: '/admin',
      httpOnly: true,
      sameSite: 'strict',
      secure: cameOverTls(req),
      maxAge: SESSION_MS / 1000,
    });
    return reply.header('cache-control', 'no-store').redirect('/admin/queues/', 303);
  });
  app.get('/admin/logout', async (req, reply) => {
    const id = sessionId(req.cookies[SESSION_COOKIE], opts.token, Date.now());
    if (id !== undefined) {
      // Ended in Redis, so the cookie stops working on every replica, even where it was copied to.
      try {
        await opts.connection.del(sessionKey(id));
      } catch (err) {
        opts.log.warn({ ip: req.ip, session: sessionTag(id), err: redactString(String(err)) }, 'admin logout could not end the session: Redis did not answer');
        return html(reply.code(503)).send(loginPage('Logging out needs Redis, which did not answer: the session is still open. Try again.'));
      }
      opts.log.info({ ip: req.ip, session: sessionTag(id) }, 'admin logout');
    }
    return reply.header('cache-control', 'no-store').clearCookie(SESSION_COOKIE, { path: '/admin' }).redirect('/admin/login', 303);
  });

  const prefixOf = (p: string | undefined): string | undefined => (p === undefined ? opts.prefixes[0] : opts.prefixes.includes(p) ? p : undefined);
  const deadLetters = (prefix: string, queue: string) =>
    new DeadLetters({ connection: opts.connection, prefix, ownPrefix: opts.ownPrefix, queue, log: opts.log, skipMetasUpdate: true });

  app.get('/admin/dlq/:queue', async (req, reply) => {
    const params = queueParam.safeParse(req.params);
    if (!params.success) return badRequest(reply, params.error);
    const query = listQuery.safeParse(req.query);
    if (!query.success) return badRequest(reply, query.error);
    const prefix = prefixOf(query.data.prefix);
    if (!prefix) return reply.code(400).send({ error: 'bad request', field: 'prefix', detail: `one of ${opts.prefixes.join(', ')}` });
    const dead = deadLetters(prefix, params.data.queue);
    try {
      const jobs = await dead.list({ since: query.data.since, limit: query.data.limit });
      return reply.header('cache-control', 'no-store').send({
        queue: params.data.queue,
        dlq: dead.dlq.name,
        count: await dead.count(),
        // Summaries only: job data can hold personal data and secrets.
        jobs: jobs.map((j) =>
          isDeadLetterRecord(j.data)
            ? {
                id: j.id,
                name: j.name,
                sourceJobId: j.data.source.jobId,
                attemptsMade: j.data.attemptsMade,
                failedReason: redactString(j.data.failedReason),
                firstFailedAt: j.data.firstFailedAt,
                deadLetteredAt: j.data.deadLetteredAt,
              }
            : { id: j.id, name: j.name, invalid: NOT_A_DEAD_LETTER },
        ),
      });
    } finally {
      await dead.close();
    }
  });

  app.post('/admin/dlq/:queue/redrive', async (req, reply) => {
    const params = queueParam.safeParse(req.params);
    if (!params.success) return badRequest(reply, params.error);
    const body = redriveBody.safeParse(req.body ?? {});
    if (!body.success) return badRequest(reply, body.error);
    if (!opts.writes && !body.data.dryRun)
      return reply
        .code(403)
        .header('cache-control', 'no-store')
        .send({ error: 'read-only', detail: `${READ_ONLY_DETAIL} (a dryRun redrive is allowed)` });
    const prefix = prefixOf(body.data.prefix);
    if (!prefix) return reply.code(400).send({ error: 'bad request', field: 'prefix', detail: `one of ${opts.prefixes.join(', ')}` });
    const dead = deadLetters(prefix, params.data.queue);
    const target = new Queue(params.data.queue, { connection: opts.connection, prefix, skipMetasUpdate: true });
    try {
      const jobs = await dead.list({ ids: body.data.ids, since: body.data.since, limit: MAX_REDRIVE });
      const outcomes: RedriveOutcome[] = [];
      for (const j of jobs) outcomes.push(await dead.redrive(target, j, body.data.dryRun));
      for (const id of body.data.ids ?? []) if (!jobs.some((j) => j.id === id)) outcomes.push({ dlqJobId: id, status: 'not-found' });
      const tally: Record<string, number> = {};
      for (const o of outcomes) tally[o.status] = (tally[o.status] ?? 0) + 1;
      const selection = body.data.ids ? { ids: body.data.ids.length } : body.data.since !== undefined ? { since: body.data.since } : { all: true };
      opts.log.info({ ...who.get(req), ip: req.ip, queue: params.data.queue, selection, tally, dryRun: body.data.dryRun }, 'admin redrive');
      // Another redrive of some of these is under way: the caller sees which, and can retry just those.
      if (tally.conflict) reply.code(409);
      return reply.send({ queue: params.data.queue, dryRun: body.data.dryRun, tally, outcomes });
    } finally {
      await Promise.all([dead.close(), target.close()]);
    }
  });

  await mountBullBoard(app, opts);
}

async function mountBullBoard(app: FastifyInstance, opts: AdminOptions): Promise<void> {
  const serverAdapter = new FastifyAdapter().setBasePath('/admin/queues');
  const board = createBullBoard({ queues: [], serverAdapter, options: { uiConfig: { boardTitle: 'queuelens' } } });
  const shown = new Map<string, { queue: Queue; adapter: BullMQAdapter }>();

  // Follows discovery: queues appear and disappear on the board as the sidecar finds or loses them.
  const sync = () => {
    const wanted = new Map(opts.queues().map((q) => [queueId(q), q]));
    for (const [id, entry] of shown) {
      if (wanted.has(id)) continue;
      board.removeQueue(entry.adapter);
      // Not awaited (the request should not wait on it), so it must not become an unhandled rejection.
      entry.queue
        .close()
        .catch((err: unknown) => opts.log.warn({ queue: entry.queue.name, err: redactString(String(err)) }, 'closing a queue removed from Bull Board failed'));
      shown.delete(id);
    }
    for (const [id, ref] of wanted) {
      if (shown.has(id)) continue;
      // skipMetasUpdate: the sidecar must never rewrite a queue's meta (it would reset stream retention).
      const queue = new Queue(ref.name, { connection: opts.connection, prefix: ref.prefix, skipMetasUpdate: true });
      const adapter = new BullMQAdapter(queue, { prefix: opts.prefixes.length > 1 ? `${ref.prefix}:` : '', readOnlyMode: !opts.writes });
      board.addQueue(adapter);
      shown.set(id, { queue, adapter });
    }
  };
  await app.register(
    async (scope) => {
      scope.addHook('onRequest', async () => sync());
      // Job data, return values, failure reasons, stack traces and logs reach the browser masked as logs are: no
      // secret-named field (a webhook job's `secret`), no email local part, no URL password.
      scope.addHook('onSend', async (req, reply, payload) => {
        if (!routeOf(req).startsWith('/admin/queues/api/') || typeof payload !== 'string' || !String(reply.getHeader('content-type') ?? '').includes('json'))
          return payload;
        try {
          return JSON.stringify(redactJson(JSON.parse(payload)));
        } catch {
          return payload;
        }
      });
      await scope.register(serverAdapter.registerPlugin());
    },
    { prefix: '/admin/queues' },
  );
  app.addHook('onClose', async () => {
    await Promise.all([...shown.values()].map((e) => e.queue.close()));
    shown.clear();
  });
}
