// Owns the sidecar's admin surface: dead-letter listing and redrive over HTTP, and Bull Board at
// /admin/queues. A Fastify plugin registered by buildApp only when an admin token is configured; every route
// in it sits behind one bearer-token check, so an unauthenticated caller learns nothing but "401".
import { createHash, timingSafeEqual } from 'node:crypto';
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
export function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return timingSafeEqual(digest(m?.[1] ?? ''), digest(token)) && m !== null;
}

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
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (!tokenMatches(req.headers.authorization, opts.token)) {
      return reply.code(401).header('www-authenticate', 'Bearer realm="queuelens-admin"').header('cache-control', 'no-store').send({ error: 'unauthorized' });
    }
  });

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
