// The sidecar's PostgreSQL options: Redis stays the default and unchanged; --backend postgres says what it lacks, and
// a connection string never appears in an error.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config/options.js';
import { resolveSidecarConfig } from '../src/config/sidecar-config.js';
import { postgresWhere } from '../src/postgres/connection.js';

const SECRET = 'pa55-w0rd-never-shown';

describe('sidecar config: --backend postgres', () => {
  it('keeps Redis the default, with the PostgreSQL options at their defaults and unused', () => {
    const c = resolveSidecarConfig({});
    expect(c.backend).toBe('redis');
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.databaseUrl).toBeUndefined();
    expect([c.pgSchema, c.pgOwnSchema, c.pgStatementTimeout]).toEqual(['bullmq', 'queuelens', 5]);
  });

  it('takes the database URL, schemas and statement timeout', () => {
    const c = resolveSidecarConfig({
      backend: 'postgres',
      databaseUrl: `postgresql://app:${SECRET}@db.example:6432/jobs?sslmode=verify-full`,
      pgSchema: 'Jobs "prod"',
      pgOwnSchema: 'ql',
      pgStatementTimeout: '0.5',
    });
    expect(c.backend).toBe('postgres');
    expect(c.pgSchema).toBe('Jobs "prod"');
    expect(c.pgStatementTimeout).toBe(0.5);
  });

  it('says what to do when --backend postgres has no database URL', () => {
    expect(() => resolveSidecarConfig({ backend: 'postgres' })).toThrow(ConfigError);
    expect(() => resolveSidecarConfig({ backend: 'postgres' })).toThrow(
      /--backend postgres \(QUEUELENS_BACKEND\) needs --database-url \(DATABASE_URL\).*PGPASSWORD/,
    );
    // An empty DATABASE_URL is not a URL (the option has no default to fall back on).
    expect(() => resolveSidecarConfig({ backend: 'postgres', databaseUrl: '' })).toThrow(
      /--database-url \(DATABASE_URL\) \(value hidden\): expected a URL like postgres:/,
    );
  });

  it('refuses other backends, other URL schemes, and its own schema equal to BullMQ’s, never echoing the URL', () => {
    expect(() => resolveSidecarConfig({ backend: 'mysql' })).toThrow(/--backend \(QUEUELENS_BACKEND\) "mysql": expected one of redis, postgres/);
    let message = '';
    try {
      resolveSidecarConfig({ backend: 'postgres', databaseUrl: `mysql://app:${SECRET}@db/x` });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/--database-url \(DATABASE_URL\) \(value hidden\): expected a URL starting with postgres:\/\/ or postgresql:\/\//);
    expect(message).not.toContain(SECRET);
    expect(() => resolveSidecarConfig({ backend: 'postgres', databaseUrl: 'postgres://db/x', pgOwnSchema: 'bullmq' })).toThrow(
      /--pg-own-schema \(QUEUELENS_PG_OWN_SCHEMA\) "bullmq": must differ from --pg-schema/,
    );
    expect(() => resolveSidecarConfig({ backend: 'postgres', databaseUrl: 'postgres://db/x', pgSchema: 'x'.repeat(64) })).toThrow(/at most 63 bytes/);
    expect(() => resolveSidecarConfig({ backend: 'postgres', databaseUrl: 'postgres://db/x', pgStatementTimeout: '0' })).toThrow(/--pg-statement-timeout/);
  });

  it('describes where it connects without the password', () => {
    expect(postgresWhere(`postgres://app:${SECRET}@db.example:6432/jobs?sslmode=require`)).toBe('db.example:6432/jobs');
    expect(postgresWhere(`postgres://app:${SECRET}@db.example/jobs`)).toBe('db.example:5432/jobs');
  });
});
