// The sidecar's admin surface through inject(): off without a token, 401 without the right bearer token (and
// nothing leaks), dead-letter listing and redrive, Bull Board, and no rewrite of any queue's meta.
import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminRoutes, SESSION_COOKIE, sessionValid, sessionValue, tokenMatches } from '../src/http/admin-routes.js';
import { createLogger } from '../src/log/logger.js';
import type { QueueRef } from '../src/domain/queue-ref.js';
import { redriveJobId, type DeadLetterRecord } from '../src/dead-letters/dead-letters.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

const TOKEN = 'admin-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };
let redis: TestRedis;
let sidecar: Awaited<ReturnType<typeof testSidecar>>;

function record(i: number, at: number): DeadLetterRecord {
  return {
    source: { prefix: 'bull', queue: 'email', jobId: `orig-${i}`, name: 'welcome' },
    data: { template: 'welcome', to: `victim-${i}@example.com`, vars: {} },
    opts: { attempts: 3 },
    failedReason: `smtp rejected victim-${i}@example.com`,
    stacktrace: ['Error: x'],
    attemptsMade: 3,
    firstFailedAt: at - 1000,
    lastFailedAt: at,
    deadLetteredAt: at,
  };
}

beforeAll(async () => {
  redis = await startTestRedis();
  const dlq = new Queue('email-dlq', { connection: { host: '127.0.0.1', port: redis.port } });
  const now = Date.now();
  for (let i = 0; i < 5; i += 1) await dlq.add('welcome', record(i, now - (5 - i) * 60_000), { jobId: `dl-${i}` });
  await dlq.close();
  await redis.client().hset('bull:email-dlq:meta', 'opts.maxLenEvents', '777');
  // Writes on: these tests redrive (test/admin-guards.test.ts covers the read-only default).
  sidecar = await testSidecar(redis.url, { adminToken: TOKEN, adminWrites: 'true' });
  await sidecar.refresh();
});

afterAll(async () => {
  await sidecar?.close();
  await redis?.stop();
});

describe('admin surface', () => {
  it('is off when no token is configured', async () => {
    const off = await testSidecar(redis.url);
    for (const url of ['/admin/dlq/email', '/admin/queues', '/admin/queues/api/queues']) {
      expect((await off.app.inject({ url, headers: auth })).statusCode, url).toBe(404);
    }
    await off.close();
  });

  it('answers 401 to a missing or wrong token on every route, and leaks nothing', async () => {
    const requests = [
      { method: 'GET' as const, url: '/admin/dlq/email' },
      { method: 'POST' as const, url: '/admin/dlq/email/redrive', payload: { all: true } },
      { method: 'GET' as const, url: '/admin/queues' },
      { method: 'GET' as const, url: '/admin/queues/api/queues' },
    ];
    for (const headers of [{}, { authorization: 'Bearer wrong-token-0123456789abcdef' }, { authorization: TOKEN }, { authorization: `Basic ${TOKEN}` }]) {
      for (const r of requests) {
        const res = await sidecar.app.inject({ ...r, headers });
        expect(res.statusCode, `${r.url} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
        expect(res.json()).toEqual({ error: 'unauthorized' });
      }
    }
    // The unauthorized redrive changed nothing.
    expect(await redis.client().llen('bull:email-dlq:wait')).toBe(5);
    expect(await redis.client().exists('bull:email:wait')).toBe(0);
  });

  it('compares tokens in constant time without accepting prefixes or padding', () => {
    expect(tokenMatches(`Bearer ${TOKEN}`, TOKEN)).toBe(true);
    expect(tokenMatches(`bearer ${TOKEN} `, TOKEN)).toBe(true);
    expect(tokenMatches(`Bearer ${TOKEN.slice(0, -1)}`, TOKEN)).toBe(false);
    expect(tokenMatches(`Bearer ${TOKEN}x`, TOKEN)).toBe(false);
    expect(tokenMatches(undefined, TOKEN)).toBe(false);
  });

  it('lets a browser in through /admin/login with a session cookie, and only with the right token', async () => {
    const form = (token: string) => ({
      method: 'POST' as const,
      url: '/admin/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${encodeURIComponent(token)}`,
    });
    // Opening Bull Board in a browser without a session leads to the form; an API client still gets 401.
    const html = { accept: 'text/html,application/xhtml+xml' };
    const open = await sidecar.app.inject({ url: '/admin/queues', headers: html });
    expect(open.statusCode).toBe(303);
    expect(open.headers.location).toBe('/admin/login');
    const page = await sidecar.app.inject({ url: '/admin/login' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<form method="post" action="/admin/login">');

    for (const wrong of ['', 'nope', TOKEN.slice(0, -1), `${TOKEN} `]) {
      const res = await sidecar.app.inject(form(wrong));
      expect(res.statusCode, JSON.stringify(wrong)).toBe(401);
      expect(res.headers['set-cookie'], JSON.stringify(wrong)).toBeUndefined();
      expect(res.body).not.toContain(TOKEN);
    }
    expect((await sidecar.app.inject({ ...form(TOKEN), payload: `token=${'x'.repeat(10_000)}` })).statusCode).toBe(413);

    const ok = await sidecar.app.inject(form(TOKEN));
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe('/admin/queues/');
    const setCookie = String(ok.headers['set-cookie']);
    expect(setCookie).toMatch(new RegExp(`^${SESSION_COOKIE}=\\d+\\.[0-9a-f]{32}\\.[0-9a-f]{64}; Max-Age=43200; Path=/admin; HttpOnly; SameSite=Strict$`));
    expect(setCookie).not.toContain(TOKEN);
    const session = { cookie: setCookie.split(';')[0]! };

    expect((await sidecar.app.inject({ url: '/admin/queues/api/queues', headers: session })).statusCode).toBe(200);
    expect((await sidecar.app.inject({ url: '/admin/dlq/email', headers: session })).statusCode).toBe(200);
    // A state change with the cookie from another origin is refused, from this origin it is allowed (a dry run here).
    const redrive = { method: 'POST' as const, url: '/admin/dlq/email/redrive', payload: { ids: ['dl-0'], dryRun: true } };
    const foreign = await sidecar.app.inject({ ...redrive, headers: { ...session, origin: 'https://evil.example' } });
    expect(foreign.statusCode).toBe(403);
    const same = await sidecar.app.inject({ ...redrive, headers: { ...session, host: 'sidecar:9487', origin: 'http://sidecar:9487' } });
    expect(same.statusCode).toBe(200);
    // A forged or expired session is no session.
    for (const cookie of [
      `${SESSION_COOKIE}=${Date.now() + 3_600_000}.${'0'.repeat(64)}`,
      `${SESSION_COOKIE}=${sessionValue(TOKEN, Date.now() - 13 * 3_600_000)}`,
      `${SESSION_COOKIE}=${sessionValue('another-token', Date.now())}`,
    ]) {
      expect((await sidecar.app.inject({ url: '/admin/dlq/email', headers: { cookie } })).statusCode, cookie).toBe(401);
    }
    const out = await sidecar.app.inject({ url: '/admin/logout', headers: session });
    expect(out.statusCode).toBe(303);
    expect(String(out.headers['set-cookie'])).toMatch(new RegExp(`^${SESSION_COOKIE}=; Max-Age=0; Path=/admin`));
  });

  it('accepts a session value only before its expiry and only under the token that made it', () => {
    const now = 1_700_000_000_000;
    const v = sessionValue(TOKEN, now);
    expect(sessionValid(v, TOKEN, now + 1000)).toBe(true);
    expect(sessionValid(v, TOKEN, now + 12 * 3_600_000 + 1)).toBe(false);
    expect(sessionValid(v, `${TOKEN}x`, now)).toBe(false);
    expect(sessionValid(v.replace(/^\d+/, String(now + 48 * 3_600_000)), TOKEN, now)).toBe(false);
    expect(sessionValid(undefined, TOKEN, now)).toBe(false);
  });

  it('lists dead letters newest first, as summaries without job data', async () => {
    const res = await sidecar.app.inject({ url: '/admin/dlq/email?limit=3', headers: auth });
    expect(res.statusCode).toBe(200);
    const body = res.json() as { count: number; dlq: string; jobs: Array<{ id: string; failedReason: string; attemptsMade: number }> };
    expect(body.count).toBe(5);
    expect(body.dlq).toBe('email-dlq');
    expect(body.jobs.map((j) => j.id)).toEqual(['dl-4', 'dl-3', 'dl-2']);
    expect(body.jobs[0]).toMatchObject({ attemptsMade: 3, failedReason: 'smtp rejected ***@example.com' });
    expect(res.body).not.toMatch(/victim-\d@/);
    const since = await sidecar.app.inject({ url: `/admin/dlq/email?since=${Date.now() - 150_000}`, headers: auth });
    expect((since.json() as { jobs: unknown[] }).jobs).toHaveLength(2);
    expect((await sidecar.app.inject({ url: '/admin/dlq/email-dlq', headers: auth })).statusCode).toBe(400);
    expect((await sidecar.app.inject({ url: '/admin/dlq/email?prefix=other', headers: auth })).json()).toMatchObject({ field: 'prefix' });
  });

  it('redrives by id, idempotently, and refuses a request without a selection', async () => {
    const none = await sidecar.app.inject({ method: 'POST', url: '/admin/dlq/email/redrive', headers: auth, payload: {} });
    expect(none.statusCode).toBe(400);
    const dry = await sidecar.app.inject({ method: 'POST', url: '/admin/dlq/email/redrive', headers: auth, payload: { ids: ['dl-0'], dryRun: true } });
    expect(dry.json()).toMatchObject({ tally: { 'would-redrive': 1 } });
    expect(await redis.client().llen('bull:email-dlq:wait')).toBe(5);

    const res = await sidecar.app.inject({ method: 'POST', url: '/admin/dlq/email/redrive', headers: auth, payload: { ids: ['dl-0', 'dl-1', 'nope'] } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ tally: { redriven: 2, 'not-found': 1 } });
    const email = new Queue('email', { connection: { host: '127.0.0.1', port: redis.port }, skipMetasUpdate: true });
    const job = await email.getJob(redriveJobId('dl-0'));
    expect(job!.data).toMatchObject({ to: 'victim-0@example.com', redrivenFrom: { queue: 'email-dlq', dlqJobId: 'dl-0', originalJobId: 'orig-0' } });
    expect(job!.opts.attempts).toBe(3);
    expect(await email.getWaitingCount()).toBe(2);
    const again = await sidecar.app.inject({ method: 'POST', url: '/admin/dlq/email/redrive', headers: auth, payload: { ids: ['dl-0'] } });
    expect(again.json()).toMatchObject({ tally: { 'not-found': 1 } });
    expect(await email.getWaitingCount()).toBe(2);
    await email.close();
    expect(await redis.client().llen('bull:email-dlq:wait')).toBe(3);
  });

  it('serves Bull Board with the discovered queues, without rewriting any meta', async () => {
    const page = await sidecar.app.inject({ url: '/admin/queues', headers: auth });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    const api = await sidecar.app.inject({ url: '/admin/queues/api/queues', headers: auth });
    expect(api.statusCode).toBe(200);
    const names = (api.json() as { queues: Array<{ name: string }> }).queues.map((q) => q.name);
    expect(names).toContain('email-dlq');
    expect(await redis.client().hget('bull:email-dlq:meta', 'opts.maxLenEvents')).toBe('777');
  });

  it('a queue leaving Bull Board whose close fails is logged, never an unhandled rejection', async () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }) });
    let shown: QueueRef[] = [{ prefix: 'bull', name: 'email' }];
    const connection = redis.client();
    const app = Fastify();
    await app.register(adminRoutes, { token: TOKEN, connection, prefixes: ['bull'], ownPrefix: 'queuelens', queues: () => shown, log });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      expect((await app.inject({ url: '/admin/queues/api/queues', headers: auth })).statusCode).toBe(200);
      // Closing a board queue rejects only on failures we cannot stage with a real Redis (it shares the
      // sidecar's connection), so this one close is made to fail.
      const close = vi.spyOn(Queue.prototype, 'close').mockRejectedValueOnce(new Error('close failed'));
      shown = [];
      const res = await app.inject({ url: '/admin/queues/api/queues', headers: auth });
      expect(res.statusCode).toBe(200);
      expect((res.json() as { queues: unknown[] }).queues).toEqual([]);
      expect(close).toHaveBeenCalledTimes(1);
      close.mockRestore();
      await new Promise((r) => setTimeout(r, 50));
      expect(unhandled).toEqual([]);
      expect(lines.map((l) => JSON.parse(l) as { msg: string; queue: string })).toMatchObject([
        { msg: 'closing a queue removed from Bull Board failed', queue: 'email' },
      ]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await app.close();
    }
  });
});
