// Secrets and personal data never reach a log line.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log/logger.js';
import { redactString } from '../src/log/redact.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, log: createLogger({ level: 'debug', destination: stream }) };
}

describe('redaction', () => {
  it('masks URL credentials, bearer tokens and email addresses in strings', () => {
    expect(redactString('redis://:hunter2@h:6379/0')).toBe('redis://:***@h:6379/0');
    expect(redactString('rediss://app:hunter2@h')).toBe('rediss://app:***@h');
    expect(redactString('redis://onlytoken@h')).toBe('redis://***@h');
    expect(redactString('Authorization: Bearer abc.def-123')).toBe('Authorization: Bearer ***');
    expect(redactString('sent to jane.doe+x@example.co.uk ok')).toBe('sent to ***@example.co.uk ok');
  });

  it('masks them in messages, fields, nested objects and errors; secret-named keys are dropped', () => {
    const { lines, log } = capture();
    log.info('connecting to redis://:hunter2@h');
    log.info({ to: 'jane@example.com', nested: { url: 'redis://u:pw123456@h' }, password: 'plain', token: 'tok-1' }, 'sent');
    log.error({ err: new Error('failed for jane@example.com with redis://:hunter2@h') }, 'boom');
    const all = lines.join('');
    for (const secret of ['hunter2', 'jane@', 'jane.doe', 'pw123456', 'plain', 'tok-1']) expect(all).not.toContain(secret);
    expect(all).toContain('***@example.com');
    expect(all).toContain('redis://:***@h');
  });
});
