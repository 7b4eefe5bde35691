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

  it("masks the path and query of webhook services' URLs, which hold their secret, in strings and log lines", () => {
    const cases: Array<[string, string]> = [
      ['https://hooks.slack.com/services/T0001/B0002/slackSECRET1', 'https://hooks.slack.com/***'],
      ['post to https://discord.com/api/webhooks/123/discordSECRET2?wait=true failed', 'post to https://discord.com/*** failed'],
      ['https://discordapp.com/api/webhooks/1/discordSECRET3', 'https://discordapp.com/***'],
      ['"https://acme.webhook.office.com/webhookb2/a@b/IncomingWebhook/teamsSECRET4/c"', '"https://acme.webhook.office.com/***"'],
      ['https://outlook.office.com/webhook/x/IncomingWebhook/teamsSECRET5/y', 'https://outlook.office.com/***'],
      ['https://prod-1.westus.logic.azure.com:443/workflows/w/triggers/manual/paths/invoke?sig=azureSECRET6', 'https://prod-1.westus.logic.azure.com:443/***'],
      ['https://chat.googleapis.com/v1/spaces/S/messages?key=k&token=googleSECRET7', 'https://chat.googleapis.com/***'],
      ['HTTPS://HOOKS.SLACK.COM/services/T/B/slackSECRET8', 'HTTPS://HOOKS.SLACK.COM/***'],
    ];
    for (const [text, masked] of cases) expect(redactString(text), text).toBe(masked);
    // Other URLs keep their path (it names the endpoint, and is not a secret there).
    expect(redactString('https://example.com/hooks/orders')).toBe('https://example.com/hooks/orders');
    const { lines, log } = capture();
    log.warn({ url: cases[0]![0], err: new Error(`POST ${cases[1]![0]}`) }, `delivery to ${cases[2]![0]} failed`);
    const all = lines.join('');
    expect(all).toContain('https://hooks.slack.com/***');
    for (const secret of ['slackSECRET1', 'discordSECRET2', 'discordSECRET3']) expect(all, secret).not.toContain(secret);
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

  // Valid addresses (RFC 5322 / RFC 6531) that a "usual characters" pattern cuts in two, leaving part of the local part.
  const ODD_ADDRESSES: Array<[local: string, domain: string]> = [
    ["jean-luc.o'brien", 'corp.example'],
    ["d'artagnan", 'mousquetaires.fr'],
    ["a!#$%&'*+/=?^_`{|}~-b", 'x.io'],
    ['user+tag', 'example.com'],
    ['first.last', 'sub.example.co.uk'],
    ['"john doe"', 'example.com'],
    ['"john..doe"', 'example.org'],
    ['"a@b"', 'example.net'],
    ['"quote\\"inside"', 'example.com'],
    ['josé.garcía', 'exämple.de'],
    ['用户', '例子.广告'],
    ['почта', 'пример.рф'],
    ['admin', 'xn--bcher-kva.example'],
    ['user', '[192.168.0.1]'],
    ['user', '[IPv6:2001:db8::1]'],
    ['{weird}', 'example.com'],
    ['1234567890', 'example.com'],
    ['x', 'example.com'],
  ];

  it('masks the whole local part of valid odd addresses, wherever they sit in a line', () => {
    const around: Array<[string, string]> = [
      ['', ''],
      ['sent to ', ' ok'],
      ['<', '>'],
      ['(', '), next'],
      ['mailto:', '?subject=hi'],
      ['failed for ', '.'],
    ];
    for (const [local, domain] of ODD_ADDRESSES) {
      for (const [before, after] of around) {
        const text = `${before}${local}@${domain}${after}`;
        expect(redactString(text), text).toBe(`${before}***@${domain}${after}`);
      }
    }
    // Two in one line, and one in a JSON string.
    expect(redactString('cc o\'neil@a.example and "x y"@b.example')).toBe('cc ***@a.example and ***@b.example');
    expect(redactString(JSON.stringify({ to: "o'hara@example.com" }))).toBe('{"to":"***@example.com"}');
    // What is not an address stays as it is.
    for (const text of ['@opentelemetry/api', 'queuelens@1.2.3', 'https://***@host.example/path', 'a @ b']) expect(redactString(text)).toBe(text);
  });

  // Non-ASCII atext (RFC 6531), quoted segments and comments in the local part; dotless and unusual domains; a
  // URL-encoded `@`. [address, what it must become]
  const UNUSUAL: Array<[string, string]> = [
    ['jo☃hn@example.com', '***@example.com'],
    ['😀user@example.com', '***@example.com'],
    ['a."b c"@example.com', '***@example.com'],
    ['john.smith(comment)@example.com', '***@example.com'],
    ['admin@localhost', '***@localhost'],
    ['ops@intranet', '***@intranet'],
    ['bob@my_host.example.com', '***@my_host.example.com'],
    ['alice@example.com-billing', '***@example.com-billing'],
    ['carol%40example.com', '***%40example.com'],
  ];

  it('masks the whole local part of unusual addresses and of addresses with dotless or unusual domains', () => {
    for (const [address, masked] of UNUSUAL) {
      for (const [before, after] of [
        ['', ''],
        ['sent to ', ' ok'],
        ['<', '>'],
        ['failed for ', '.'],
      ]) {
        expect(redactString(`${before}${address}${after}`), address).toBe(`${before}${masked}${after}`);
      }
    }
    const { lines, log } = capture();
    for (const [address] of UNUSUAL) log.warn({ to: address }, `bounce from ${address}`);
    const all = lines.join('');
    for (const local of ['jo☃hn', '😀user', 'john', 'smith', 'comment', 'admin', 'ops', 'bob', 'alice', 'carol', 'b c']) expect(all).not.toContain(local);
  });

  it('keeps the local part of odd addresses out of log lines', () => {
    const { lines, log } = capture();
    for (const [local, domain] of ODD_ADDRESSES)
      log.warn({ to: `${local}@${domain}`, err: new Error(`rejected ${local}@${domain}`) }, `bounce from ${local}@${domain}`);
    const all = lines.join('');
    for (const [local] of ODD_ADDRESSES) {
      // Every piece of the local part longer than one character (its quotes and dots aside) is gone.
      for (const piece of local
        .replace(/^"|"$/g, '')
        .split(/[.'"\\ ]+/)
        .filter((p) => p.length > 2))
        expect(all, local).not.toContain(`${piece}@`);
      expect(all).not.toContain(JSON.stringify(`${local}@`).slice(1, -1));
    }
    for (const [, domain] of ODD_ADDRESSES) expect(all).toContain(`bounce from ***@${domain}`);
  });
});
