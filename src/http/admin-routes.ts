// Owns the sidecar's admin surface: dead-letter listing and redrive over HTTP, and Bull Board at
// /admin/queues. A Fastify plugin registered by buildApp only when an admin token is configured; every route
// in it sits behind one bearer-token check, so an unauthenticated caller learns nothing but "401".
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Logger } from '../log/logger.js';
import { redactString } from '../log/redact.js';
import type { RedisClient } from '../redis/connection.js';
import { queueId, type QueueRef } from '../redis/keys.js';
import { DeadLetters, type RedriveOutcome } from '../workers/dead-letter.js';

export interface AdminOptions {
  token: string;
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
// `<expiry ms>.<HMAC-SHA256 of it, keyed by the token>`. Stateless, so every replica accepts it; changing the
// token ends every session. HttpOnly, SameSite=Strict, scoped to /admin.
export const SESSION_COOKIE = 'queuelens_admin';
const SESSION_MS = 12 * 3600_000;
const sessionMac = (token: string, expiry: number) => createHmac('sha256', token).update(`queuelens-admin-session:${expiry}`).digest('hex');

export function sessionValue(token: string, now: number): string {
  const expiry = now + SESSION_MS;
  return `${expiry}.${sessionMac(token, expiry)}`;
}

export function sessionValid(value: string | undefined, token: string, now: number): boolean {
  const m = /^(\d{1,16})\.([0-9a-f]{64})$/.exec(value ?? '');
  if (!m) return false;
  const expiry = Number(m[1]);
  return sameSecret(m[2]!, sessionMac(token, expiry)) && expiry > now;
}

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
  const html = (reply: FastifyReply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?')[0] ?? req.url;
    if (path === '/admin/login' || path === '/admin/logout') return;
    if (tokenMatches(req.headers.authorization, opts.token)) return;
    if (sessionValid(req.cookies[SESSION_COOKIE], opts.token, Date.now())) {
      if (req.method === 'GET' || req.method === 'HEAD' || !crossOrigin(req)) return;
      return reply.code(403).header('cache-control', 'no-store').send({ error: 'cross-origin request refused' });
    }
    // A person opening Bull Board gets the login form; API clients get a plain 401.
    if (req.method === 'GET' && path.startsWith('/admin/queues') && req.headers.accept?.includes('text/html')) return reply.redirect('/admin/login', 303);
    return reply.code(401).header('www-authenticate', 'Bearer realm="queuelens-admin"').header('cache-control', 'no-store').send({ error: 'unauthorized' });
  });

  app.get('/admin/login', async (_req, reply) => html(reply).send(loginPage('')));
  app.post('/admin/login', async (req, reply) => {
    const token = (req.body as Record<string, unknown> | undefined)?.token;
    if (typeof token !== 'string' || !sameSecret(token, opts.token)) {
      opts.log.warn({ ip: req.ip }, 'admin login with a wrong token');
      return html(reply.code(401)).send(loginPage('That is not the admin token.'));
    }
    const secure = req.protocol === 'https' || req.headers['x-forwarded-proto'] === 'https';
    reply.setCookie(SESSION_COOKIE, sessionValue(opts.token, Date.now()), { path: '/admin', httpOnly: true, sameSite: 'strict', secure, maxAge: SESSION_MS / 1000 });
    return reply.header('cache-control', 'no-store').redirect('/admin/queues/', 303);
  });
  app.get('/admin/logout', async (_req, reply) => reply.clearCookie(SESSION_COOKIE, { path: '/admin' }).redirect('/admin/login', 303));

  const prefixOf = (p: string | undefined): string | undefined => (p === undefined ? opts.prefixes[0] : opts.prefixes.includes(p) ? p : undefined);
  const deadLetters = (prefix: string, queue: string) => new DeadLetters({ connection: opts.connection, prefix, ownPrefix: opts.ownPrefix, queue, log: opts.log, skipMetasUpdate: true });

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
        jobs: jobs.map((j) => ({
          id: j.id,
          name: j.name,
          sourceJobId: j.data.source.jobId,
          attemptsMade: j.data.attemptsMade,
          failedReason: redactString(j.data.failedReason),
          firstFailedAt: j.data.firstFailedAt,
          deadLetteredAt: j.data.deadLetteredAt,
        })),
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
      opts.log.info({ queue: params.data.queue, tally, dryRun: body.data.dryRun }, 'admin redrive');
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
      entry.queue.close().catch((err: unknown) => opts.log.warn({ queue: entry.queue.name, err: redactString(String(err)) }, 'closing a queue removed from Bull Board failed'));
      shown.delete(id);
    }
    for (const [id, ref] of wanted) {
      if (shown.has(id)) continue;
      // skipMetasUpdate: the sidecar must never rewrite a queue's meta (it would reset stream retention).
      const queue = new Queue(ref.name, { connection: opts.connection, prefix: ref.prefix, skipMetasUpdate: true });
      const adapter = new BullMQAdapter(queue, { prefix: opts.prefixes.length > 1 ? `${ref.prefix}:` : '' });
      board.addQueue(adapter);
      shown.set(id, { queue, adapter });
    }
  };
  await app.register(
    async (scope) => {
      scope.addHook('onRequest', async () => sync());
      await scope.register(serverAdapter.registerPlugin());
    },
    { prefix: '/admin/queues' },
  );
  app.addHook('onClose', async () => {
    await Promise.all([...shown.values()].map((e) => e.queue.close()));
    shown.clear();
  });
}
