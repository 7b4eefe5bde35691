// One-shot commands (enqueue, dlq) against a Redis that is not there: they end on their own with exit 1
// and one sentence naming the masked URL, instead of reconnecting forever and printing stack traces.
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { freePort } from './helpers/redis-server.js';

const COMMANDS = [
  ['enqueue', 'email', '--data', '{"template":"welcome","to":"a@example.com"}'],
  ['dlq', 'list', 'email'],
  ['dlq', 'show', 'email', '--id', '1'],
  ['dlq', 'redrive', 'email', '--all'],
  ['dlq', 'purge', 'email', '--all'],
];

describe('one-shot commands with Redis down', () => {
  it.each(COMMANDS)('%s %s exits 1 with one sentence saying Redis is unreachable', async (...args) => {
    const port = await freePort();
    const url = `redis://user:hunter2@127.0.0.1:${port}`;
    // Killed after 15 s: a command still retrying by then exits with a signal, not code 1.
    const { code, output } = await runCli(args, { REDIS_URL: url }, 15_000);
    expect(code, output).toBe(1);
    expect(output.trim().split('\n'), output).toEqual([
      `queuelens: Redis is unreachable at redis://user:***@127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port}): start it, or point --redis-url (REDIS_URL) at a running Redis.`,
    ]);
    expect(output).not.toContain('hunter2');
  });
});
