// The admin surface's guarantees (docs/security.md): read-only unless writes are enabled, every write logged with who
// and what and never a payload, no secrets shown by Bull Board, guessing throttled per client with every failure
// logged, logout and token rotation ending sessions on every replica, and a `Secure` cookie whenever TLS was used.
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveSidecarConfig } from '../src/config/sidecar-config.js';
import { AuthThrottle } from '../src/http/auth-throttle.js';
import { SESSION_COOKIE } from '../src/http/admin-routes.js';
import type { Sidecar } from '../src/sidecar/create-sidecar.js';
import { runCli } from './helpers/cli.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

const TOKEN = 'admin-guard-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
const JOB_SECRET = 'per-job-secret-5ac1e9';
let redis: TestRedis;
const started: Sidecar[] = [];

interface LogLine {
  msg: string;
  [k: string]: unknown;
}

async function sidecar(raw: Record<string, unknown> = {}) {
  const lines: string[] = [];
  const sc = await testSidecar(redis.url, { logLevel: 'info', adminToken: TOKEN, ...raw }, lines);
  started.push(sc);
  await sc.refresh();
  return {
    app: sc.app,
    raw: () => lines.join(''),
    logs: () =>
      lines
        .join('')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as LogLine),
  };
}

const form = (token: string, headers: Record<string, string> = {}) => ({
  method: 'POST' as const,
  url: '/admin/login',
  headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  payload: `token=${encodeURIComponent(token)}`,
});

beforeAll(async () => {
  redis = await startTestRedis();
  const connection = { host: '127.0.0.1', port: redis.port };
  // A webhook job that failed for good, with its per-job signing secret and an address in its failure reason.
  const webhook = new Queue('webhook', { connection });
  await webhook.add('webhook', { url: 'https://hooks.example/x', event: 'e', payload: { to: 'victim@example.com' }, secret: JOB_SECRET }, { jobId: 'w1' });
  const worker = new Worker('webhook', null, { connection });
  const job = (await worker.getNextJob('tok'))!;
  await job.moveToFailed(new Error('rejected for victim@example.com via redis://:hunter2@cache:6379'), 'tok');
  await worker.close();
  await webhook.close();
  const dlq = new Queue('webhook-dlq', { connection });
  const at = Date.now();
  await dlq.add(
    'webhook',
    {
      source: { prefix: 'bull', queue: 'webhook', jobId: 'w0', name: 'webhook' },
      data: { url: 'https://hooks.example/y', event: 'e', payload: null },
      opts: { attempts: 1 },
      failedReason: 'x',
      stacktrace: [],
      attemptsMade: 1,
      firstFailedAt: at,
      lastFailedAt: at,
      deadLetteredAt: at,
    },
    { jobId: 'd1' },
  );
  await dlq.close();
});

afterAll(async () => {
  await Promise.all(started.map((s) => s.close()));
  await redis?.stop();
});

describe('admin surface: read-only by default', () => {
  it('refuses every Bull Board write and a real redrive, changes nothing, and says how to allow them', async () => {
    const { app, logs } = await sidecar();
    const before = { dlq: await redis.client().llen('bull:webhook-dlq:wait'), failed: await redis.client().zcard('bull:webhook:failed') };
    const writes = [
      { method: 'PUT' as const, url: '/admin/queues/api/queues/webhook-dlq/empty' },
      { method: 'PUT' as const, url: '/admin/queues/api/queues/webhook/clean/failed' },
      { method: 'PUT' as const, url: '/admin/queues/api/queues/webhook/retry/failed' },
      { method: 'POST' as const, url: '/admin/queues/api/queues/webhook-dlq/add', payload: { name: 'x', data: { a: 1 } } },
      { method: 'PUT' as const, url: '/admin/queues/api/queues/pause' },
      { method: 'POST' as const, url: '/admin/dlq/webhook/redrive', payload: { all: true } },
    ];
    for (const w of writes) {
      const res = await app.inject({ ...w, headers: auth });
      expect(res.statusCode, w.url).toBe(403);
      expect(res.json(), w.url).toMatchObject({ error: 'read-only', detail: expect.stringContaining('--admin-writes (QUEUELENS_ADMIN_WRITES=true)') });
    }
    expect(await redis.client().llen('bull:webhook-dlq:wait')).toBe(before.dlq);
    expect(await redis.client().zcard('bull:webhook:failed')).toBe(before.failed);
    expect(await redis.client().exists('bull:webhook-dlq:meta', 'bull:webhook:meta')).toBe(2);
    expect(await redis.client().hexists('bull:webhook:meta', 'paused')).toBe(0);
    // Reading still works, a dry-run redrive too, and Bull Board knows to hide its buttons.
    const dry = await app.inject({ method: 'POST', url: '/admin/dlq/webhook/redrive', payload: { all: true, dryRun: true }, headers: auth });
    expect(dry.statusCode).toBe(200);
    const board = await app.inject({ url: '/admin/queues/api/queues', headers: auth });
    expect(board.statusCode).toBe(200);
    expect((board.json() as { queues: Array<{ readOnlyMode: boolean }> }).queues.every((q) => q.readOnlyMode)).toBe(true);
    // Refused writes are logged too (and the dry run, a POST).
    expect(
      logs()
        .filter((l) => l.msg === 'admin write')
        .map((l) => [l.method, l.path, l.status]),
    ).toEqual([...writes.map((w) => [w.method, w.url, 403]), ['POST', '/admin/dlq/webhook/redrive', 200]]);
  });
});

/** Spellings of one path that a guard comparing the raw URL would not recognise: percent-encoded letters, `//`, case, a trailing slash. */
function spellings(url: string): Array<{ url: string; routes: boolean }> {
  const encodeLetters = (seg: string) => [...seg].map((c) => (/[a-z]/.test(c) ? `%${c.charCodeAt(0).toString(16)}` : c)).join('');
  const last = url.lastIndexOf('/');
  return [
    { url: url.replace('/admin/queues', '/admin/%71ueues'), routes: true },
    { url: url.replace('/admin/queues', '/%61dmin/queues'), routes: true },
    { url: url.replace('/admin/queues', '/admin/queue%73'), routes: true },
    { url: `${url.slice(0, last + 1)}${encodeLetters(url.slice(last + 1))}`, routes: true },
    { url: url.replace('/admin/queues', '/admin//queues'), routes: false },
    { url: url.replace('/admin/queues/api/', '/admin/queues//api/'), routes: false },
    { url: url.replace('/admin/queues', '/ADMIN/Queues'), routes: false },
    { url: `${url}/`, routes: false },
  ];
}

describe('admin surface: guards judge the routed path, however it is spelled', () => {
  it('read-only: an encoded, doubled or re-cased spelling of every Bull Board write is refused and changes nothing', async () => {
    const { app } = await sidecar();
    const state = async () => ({
      dlq: await redis.client().llen('bull:webhook-dlq:wait'),
      failed: await redis.client().zcard('bull:webhook:failed'),
      paused: await redis.client().hexists('bull:webhook:meta', 'paused'),
      metas: await redis.client().exists('bull:webhook-dlq:meta', 'bull:webhook:meta'),
    });
    const before = await state();
    const writes = [
      { method: 'PUT' as const, url: '/admin/queues/api/queues/webhook-dlq/empty' },
      { method: 'PUT' as const, url: '/admin/queues/api/queues/webhook/clean/failed' },
      { method: 'PUT' as const, url: '/admin/queues/api/queues/webhook/retry/failed' },
      { method: 'PUT' as const, url: '/admin/queues/api/queues/webhook/obliterate' },
      { method: 'PUT' as const, url: '/admin/queues/api/queues/webhook/pause' },
      { method: 'POST' as const, url: '/admin/queues/api/queues/webhook-dlq/add', payload: { name: 'x', data: { a: 1 } } },
      { method: 'PUT' as const, url: '/admin/queues/api/queues/pause', payload: { queues: ['webhook'] } },
    ];
    for (const w of writes) {
      for (const s of spellings(w.url)) {
        const res = await app.inject({ ...w, url: s.url, headers: auth });
        // Routed spellings are refused by our guard (not only by Bull Board's own read-only mode); the rest route nowhere.
        if (s.routes) expect([res.statusCode, res.json()], s.url).toEqual([403, expect.objectContaining({ error: 'read-only' })]);
        else expect(res.statusCode, s.url).toBe(404);
      }
    }
    expect(await state()).toEqual(before);
  });

  it('writes on: an encoded spelling of update-data is refused and the stored job data is untouched', async () => {
    const { app } = await sidecar({ adminWrites: 'true' });
    const stored = await redis.client().hget('bull:webhook:w1', 'data');
    for (const s of spellings('/admin/queues/api/queues/webhook/w1/update-data')) {
      const res = await app.inject({
        method: 'PATCH',
        url: s.url,
        payload: { jobData: { url: 'https://hooks.example/x', event: 'e', payload: null, secret: '***' } },
        headers: auth,
      });
      if (s.routes) expect([res.statusCode, res.json()], s.url).toEqual([403, expect.objectContaining({ error: 'refused' })]);
      else expect(res.statusCode, s.url).toBe(404);
    }
    expect(await redis.client().hget('bull:webhook:w1', 'data')).toBe(stored);
    expect(JSON.parse(stored!)).toMatchObject({ secret: JOB_SECRET });
  });

  it('masks Bull Board answers reached by an encoded path', async () => {
    const secret = 'encoded-path-secret-4b1d';
    const webhook = new Queue('webhook', { connection: { host: '127.0.0.1', port: redis.port } });
    await webhook.add('webhook', { url: 'https://hooks.example/m', event: 'e', payload: null, secret }, { jobId: 'm1', delay: 3_600_000 });
    await webhook.close();
    const { app } = await sidecar();
    const res = await app.inject({ url: '/admin/%71ueues/api/queues/webhook/m1', headers: auth });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('"secret":"***"');
    expect(res.body).not.toContain(secret);
  });
});

describe('admin surface: writes when enabled', () => {
  it('logs every write with who, what and the outcome, never the payload', async () => {
    const { app, logs, raw } = await sidecar({ adminWrites: 'true' });
    const login = await app.inject(form(TOKEN));
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const loginLine = logs().find((l) => l.msg === 'admin login')!;
    expect(loginLine).toMatchObject({ ip: '127.0.0.1', session: expect.stringMatching(/^[0-9a-f]{12}$/) });

    const add = await app.inject({
      method: 'POST',
      url: '/admin/queues/api/queues/webhook-dlq/add',
      payload: { name: 'added', data: { note: 'payload-marker-7d2f' } },
      headers: auth,
    });
    expect(add.statusCode).toBeLessThan(300);
    const empty = await app.inject({ method: 'PUT', url: '/admin/queues/api/queues/webhook-dlq/empty', headers: { cookie } });
    expect(empty.statusCode).toBeLessThan(300);
    expect(await redis.client().llen('bull:webhook-dlq:wait')).toBe(0);
    // Editing job data is refused even now: Bull Board shows it masked, and saving would store the masks.
    const edit = await app.inject({
      method: 'PATCH',
      url: '/admin/queues/api/queues/webhook/w1/update-data',
      payload: { data: { secret: '***' } },
      headers: auth,
    });
    expect(edit.statusCode).toBe(403);
    expect(JSON.parse((await redis.client().hget('bull:webhook:w1', 'data'))!)).toMatchObject({ secret: JOB_SECRET });

    const writes = logs().filter((l) => l.msg === 'admin write');
    expect(writes.map(({ via, session, ip, method, path, status }) => ({ via, session, ip, method, path, status }))).toEqual([
      { via: 'bearer', session: undefined, ip: '127.0.0.1', method: 'POST', path: '/admin/queues/api/queues/webhook-dlq/add', status: add.statusCode },
      {
        via: 'session',
        session: loginLine.session,
        ip: '127.0.0.1',
        method: 'PUT',
        path: '/admin/queues/api/queues/webhook-dlq/empty',
        status: empty.statusCode,
      },
      { via: 'bearer', session: undefined, ip: '127.0.0.1', method: 'PATCH', path: '/admin/queues/api/queues/webhook/w1/update-data', status: 403 },
    ]);
    expect(raw()).not.toContain('payload-marker-7d2f');
    expect(raw()).not.toContain(TOKEN);
    expect(raw()).not.toContain(cookie.split('=')[1]!.split('.')[1]!);
  });
});

describe('admin surface: Bull Board shows no secrets', () => {
  it('masks job data, failure reasons and stack traces as logs are masked', async () => {
    const { app } = await sidecar();
    const list = await app.inject({ url: '/admin/queues/api/queues?activeQueue=webhook&status=failed&page=1&jobsPerPage=10', headers: auth });
    const one = await app.inject({ url: '/admin/queues/api/queues/webhook/w1', headers: auth });
    for (const res of [list, one]) {
      expect(res.statusCode).toBe(200);
      // The job is there, masked.
      expect(res.body).toContain('https://hooks.example/x');
      expect(res.body).toContain('"secret":"***"');
      expect(res.body).toContain('***@example.com');
      for (const leak of [JOB_SECRET, 'victim@', 'hunter2']) expect(res.body, leak).not.toContain(leak);
    }
  });
});

describe('webhook URLs with a secret in the path', () => {
  // Slack's incoming-webhook shape: whoever has the path can post to the channel.
  const SLACK_SECRET = 'XXXXslackPathSecret0123';
  const SLACK_URL = `https://hooks.slack.com/services/T0001/B0002/${SLACK_SECRET}`;

  it('are masked in Bull Board answers and by `dlq show`', async () => {
    const connection = { host: '127.0.0.1', port: redis.port };
    const webhook = new Queue('webhook', { connection });
    await webhook.add('webhook', { url: SLACK_URL, event: 'e', payload: { note: `failed posting to ${SLACK_URL}` } }, { jobId: 'slack1', delay: 3_600_000 });
    await webhook.close();
    const dlq = new Queue('webhook-dlq', { connection });
    const at = Date.now();
    await dlq.add(
      'webhook',
      {
        source: { prefix: 'bull', queue: 'webhook', jobId: 'slack0', name: 'webhook' },
        data: { url: SLACK_URL, event: 'e', payload: null },
        opts: { attempts: 1 },
        failedReason: `webhook ${SLACK_URL} answered 404`,
        stacktrace: [],
        attemptsMade: 1,
        firstFailedAt: at,
        lastFailedAt: at,
        deadLetteredAt: at,
      },
      { jobId: 'slack-dl' },
    );
    await dlq.close();
    // Ground truth: Redis holds the whole URL.
    expect(await redis.client().hget('bull:webhook:slack1', 'data')).toContain(SLACK_SECRET);

    const { app } = await sidecar();
    for (const url of [
      '/admin/queues/api/queues/webhook/slack1',
      '/admin/queues/api/queues/webhook-dlq/slack-dl',
      '/admin/queues/api/queues?activeQueue=webhook&status=delayed&page=1&jobsPerPage=50',
    ]) {
      const res = await app.inject({ url, headers: auth });
      expect(res.statusCode, url).toBe(200);
      expect(res.body, url).toContain('https://hooks.slack.com/***');
      expect(res.body, url).not.toContain(SLACK_SECRET);
    }
    const show = await runCli(['dlq', 'show', 'webhook', '--id', 'slack-dl', '--redis-url', redis.url, '--log-level', 'silent']);
    expect(show.code).toBe(0);
    expect(show.output).toContain('https://hooks.slack.com/***');
    expect(show.output).not.toContain(SLACK_SECRET);
    const list = await runCli(['dlq', 'list', 'webhook', '--redis-url', redis.url, '--log-level', 'silent']);
    expect(list.output).toContain('slack-dl');
    expect(list.output).not.toContain(SLACK_SECRET);
  });
});

describe('admin surface: login', () => {
  it('throttles a client after 20 failures, even with the right token, logging each failure and the block once', async () => {
    const { app, logs } = await sidecar();
    const attacker = '203.0.113.7';
    for (let i = 0; i < 10; i += 1) {
      expect(
        (await app.inject({ url: '/admin/dlq/webhook', headers: { authorization: `Bearer guess-${i}-0123456789abcdef` }, remoteAddress: attacker })).statusCode,
      ).toBe(401);
      expect((await app.inject({ ...form(`guess-${i}`), remoteAddress: attacker })).statusCode).toBe(401);
    }
    for (let i = 0; i < 5; i += 1) {
      const blocked = await app.inject({ url: '/admin/dlq/webhook', headers: auth, remoteAddress: attacker });
      expect(blocked.statusCode).toBe(429);
      expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
      expect((await app.inject({ ...form(TOKEN), remoteAddress: attacker })).statusCode).toBe(429);
    }
    // Another client is not affected.
    expect((await app.inject({ url: '/admin/dlq/webhook', headers: auth, remoteAddress: '198.51.100.1' })).statusCode).toBe(200);
    const lines = logs();
    expect(lines.filter((l) => l.msg === 'admin request with a wrong Authorization header' && l.ip === attacker)).toHaveLength(10);
    expect(lines.filter((l) => l.msg === 'admin login with a wrong token' && l.ip === attacker)).toHaveLength(10);
    expect(lines.filter((l) => l.msg.startsWith('admin authentication throttled') && l.ip === attacker)).toHaveLength(1);
    expect(JSON.stringify(lines)).not.toContain('guess-');
  });

  it('never throttles a valid session: an operator logged in keeps working while the same address guesses', async () => {
    const { app } = await sidecar();
    const shared = '203.0.113.20';
    const cookie = String((await app.inject({ ...form(TOKEN), remoteAddress: shared })).headers['set-cookie']).split(';')[0]!;
    for (let i = 0; i < 25; i += 1)
      await app.inject({ url: '/admin/dlq/webhook', headers: { authorization: `Bearer guess-${i}-0123456789abcdef` }, remoteAddress: shared });
    expect((await app.inject({ url: '/admin/dlq/webhook', headers: auth, remoteAddress: shared })).statusCode).toBe(429);
    // The session opens its pages, reads and (with a cookie from this origin) is not counted as a guess.
    expect((await app.inject({ url: '/admin/dlq/webhook', headers: { cookie }, remoteAddress: shared })).statusCode).toBe(200);
    expect((await app.inject({ url: '/admin/queues/api/queues', headers: { cookie }, remoteAddress: shared })).statusCode).toBe(200);
    // A forged or ended cookie is still refused while the address is blocked.
    const forged = cookie.replace(/.$/, (c) => (c === '0' ? '1' : '0'));
    expect((await app.inject({ url: '/admin/dlq/webhook', headers: { cookie: forged }, remoteAddress: shared })).statusCode).toBe(429);
  });

  it('--trust-proxy: behind a trusted proxy the throttle keys on the forwarded client, not the proxy', async () => {
    const proxy = '10.1.2.3';
    const { app, logs } = await sidecar({ trustProxy: '10.0.0.0/8,::1' });
    const via = (client: string, headers: Record<string, string>) =>
      app.inject({ url: '/admin/dlq/webhook', headers: { ...headers, 'x-forwarded-for': client }, remoteAddress: proxy });
    for (let i = 0; i < 20; i += 1) expect((await via('203.0.113.30', { authorization: `Bearer guess-${i}-0123456789abcdef` })).statusCode).toBe(401);
    expect((await via('203.0.113.30', auth)).statusCode).toBe(429);
    // Another operator behind the same proxy is not locked out.
    expect((await via('198.51.100.31', auth)).statusCode).toBe(200);
    expect(
      logs()
        .filter((l) => l.msg === 'admin request with a wrong Authorization header')
        .every((l) => l.ip === '203.0.113.30'),
    ).toBe(true);
    // A client that is not a trusted proxy cannot pick its own address with the header.
    const direct = '192.0.2.40';
    for (let i = 0; i < 20; i += 1)
      await app.inject({
        url: '/admin/dlq/webhook',
        headers: { authorization: `Bearer guess-${i}-0123456789abcdef`, 'x-forwarded-for': `198.51.100.${i}` },
        remoteAddress: direct,
      });
    expect((await app.inject({ url: '/admin/dlq/webhook', headers: { ...auth, 'x-forwarded-for': '198.51.100.99' }, remoteAddress: direct })).statusCode).toBe(
      429,
    );
  });

  it('--trust-proxy is off by default, and refuses what is not an address or CIDR', async () => {
    const { app } = await sidecar();
    for (let i = 0; i < 20; i += 1)
      await app.inject({
        url: '/admin/dlq/webhook',
        headers: { authorization: `Bearer guess-${i}-0123456789abcdef`, 'x-forwarded-for': `198.51.100.${i}` },
        remoteAddress: '10.9.9.9',
      });
    expect(
      (await app.inject({ url: '/admin/dlq/webhook', headers: { ...auth, 'x-forwarded-for': '198.51.100.200' }, remoteAddress: '10.9.9.9' })).statusCode,
    ).toBe(429);
    for (const bad of ['2', 'proxy.internal', '10.0.0.0/33', '10.0.0.1/8/1', ''])
      expect(() => resolveSidecarConfig({ redisUrl: redis.url, prefixes: 'bull', trustProxy: bad }), bad).toThrow(/trust-proxy/);
    expect(resolveSidecarConfig({ redisUrl: redis.url, prefixes: 'bull', trustProxy: 'loopback, 10.0.0.0/8,fd00::/8' }).trustProxy).toEqual([
      'loopback',
      '10.0.0.0/8',
      'fd00::/8',
    ]);
  });

  it('counts failures in a sliding window (the throttle, on its own clock)', () => {
    const t = new AuthThrottle({ maxFailures: 3, windowMs: 1000, maxClients: 2 });
    for (const at of [0, 100, 200]) t.fail('a', at);
    expect(t.blockedFor('a', 300)).toBe(700);
    expect(t.blockedFor('a', 999)).toBe(1);
    expect(t.blockedFor('a', 1000)).toBe(0);
    expect(t.blockedFor('b', 300)).toBe(0);
    // Bounded: a third client makes it forget the least recently failing one.
    for (const at of [0, 1, 2]) t.fail('b', 500 + at);
    t.fail('c', 600);
    expect(t.blockedFor('a', 700)).toBe(0);
    expect(t.blockedFor('b', 700)).toBe(800);
  });

  it('logout ends the session on every replica, even for a copied cookie; a new token ends every session', async () => {
    const one = await sidecar();
    const two = await sidecar();
    const cookie = String((await one.app.inject(form(TOKEN))).headers['set-cookie']).split(';')[0]!;
    expect(cookie).toMatch(new RegExp(`^${SESSION_COOKIE}=\\d+\\.[0-9a-f]{32}\\.[0-9a-f]{64}$`));
    for (const app of [one.app, two.app]) expect((await app.inject({ url: '/admin/dlq/webhook', headers: { cookie } })).statusCode).toBe(200);
    const rotated = await sidecar({ adminToken: `${TOKEN}-rotated` });
    expect((await rotated.app.inject({ url: '/admin/dlq/webhook', headers: { cookie } })).statusCode).toBe(401);

    const out = await two.app.inject({ url: '/admin/logout', headers: { cookie } });
    expect(out.statusCode).toBe(303);
    for (const app of [one.app, two.app]) expect((await app.inject({ url: '/admin/dlq/webhook', headers: { cookie } })).statusCode).toBe(401);
    expect(two.logs().filter((l) => l.msg === 'admin logout')).toHaveLength(1);
  });

  it('sets Secure whenever the request came over TLS, however the proxy spells it', async () => {
    const { app } = await sidecar();
    const secureFor = async (headers: Record<string, string>) => /;\s*Secure/i.test(String((await app.inject(form(TOKEN, headers))).headers['set-cookie']));
    for (const headers of [
      { 'x-forwarded-proto': 'https' },
      { 'x-forwarded-proto': 'HTTPS' },
      { 'x-forwarded-proto': 'https, http' },
      { 'x-forwarded-proto': 'https,https' },
      { forwarded: 'for=192.0.2.60;proto=https;by=203.0.113.43' },
    ] as Array<Record<string, string>>) {
      expect(await secureFor(headers), JSON.stringify(headers)).toBe(true);
    }
    for (const headers of [{}, { 'x-forwarded-proto': 'http' }, { forwarded: 'for=192.0.2.60;proto=http' }] as Array<Record<string, string>>)
      expect(await secureFor(headers), JSON.stringify(headers)).toBe(false);
  });
});
