// Adversarial probe (issue 18): the database password never reaches a log line, /metrics, /health or /api/queues,
// whatever form the connection string carries it in: a `password` query parameter (pg reads it), percent-encoded
// characters, characters a URL parser refuses. The role does not exist, so every collection fails and says why.
import { describe, expect, it } from 'vitest';
import { usePostgresSuite, type TestPostgresSidecar } from './helpers/postgres-suite.js';

describe('adversary: the PostgreSQL password in odd places of the URL', () => {
  const pg = usePostgresSuite();

  const base = () => `127.0.0.1:${pg.server.port}/postgres`;
  it.each([
    ['a password query parameter', (s: string) => `postgres://no_such_role@${base()}?password=${s}`, 'Qp4ramSecret'],
    ['percent-encoded characters', (s: string) => `postgres://no_such_role:${s}%2F%40x@${base()}`, 'Enc0dedSecret'],
    ['a space in the password', (s: string) => `postgres://no_such_role:${s} x@${base()}`, 'Sp4ceSecret'],
  ])('never shows a password given as %s', async (_what, url, secret) => {
    const logs: string[] = [];
    let s: TestPostgresSidecar;
    try {
      s = await pg.sidecar({ logLevel: 'debug' }, logs, url(secret));
    } catch (err) {
      // Refusing the URL is fine, as long as the refusal does not echo the secret.
      expect(String((err as Error).message)).not.toContain(secret);
      expect(logs.join('')).not.toContain(secret);
      return;
    }
    try {
      await s.refresh();
      await s.start();
      await s.refresh();
      const bodies: string[] = [];
      for (const path of ['/metrics', '/health', '/api/queues', '/readyz', '/']) {
        const res = await s.app.inject({ method: 'GET', url: path });
        bodies.push(res.body);
      }
      const health = await s.app.inject({ method: 'GET', url: '/health' });
      expect(health.statusCode).toBe(503);
      expect(bodies.join('\n')).not.toContain(secret);
      expect(logs.join('')).not.toContain(secret);
      expect(logs.length).toBeGreaterThan(0);
    } finally {
      await s.close();
    }
  });
});
