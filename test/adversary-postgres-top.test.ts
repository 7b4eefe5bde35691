// Adversarial probe (issue 18): `queuelens top --backend postgres` against the sidecar's /api/queues for queues with
// hostile names, a unicode queue with workers and a dead-letter queue: the same backlog, workers and DLQ depth.
import { describe, expect, it } from 'vitest';
import type { QueuesResponse } from '../src/status/queue-view.js';
import { runCli } from './helpers/cli.js';
import { usePostgresSuite } from './helpers/postgres-suite.js';

const POLL = { timeout: 60_000, interval: 250 };

describe('adversary: top --backend postgres against /api/queues', () => {
  const pg = usePostgresSuite();

  it('shows the backlog, workers and DLQ depth the sidecar serves', async () => {
    // Backlogs 1..4, a unicode queue held by two busy workers, a DLQ of two.
    const names = ['café', `it's "q"`, 'plain', 'src'];
    for (const [i, name] of names.entries()) {
      const q = pg.bull.queue(name);
      for (let j = 0; j <= i; j++) await q.add('j', {});
    }
    const dlq = pg.bull.queue('src-dlq');
    await dlq.add('dead', {});
    await dlq.add('dead', {});
    const hold = new Promise(() => undefined);
    pg.bull.worker('café', () => hold);
    pg.bull.worker('café', () => hold, { name: 'deux' });
    await expect.poll(async () => (await pg.bull.queue('café').getJobCounts('active')).active, POLL).toBe(1);

    const s = await pg.sidecar();
    const api = async (): Promise<QueuesResponse> => {
      await s.refresh();
      return JSON.parse((await s.app.inject({ method: 'GET', url: '/api/queues' })).body) as QueuesResponse;
    };
    await expect.poll(async () => (await api()).queues.find((q) => q.name === 'café')?.workers, POLL).toBe(2);
    const served = await api();
    const top = await runCli(['top', '--once', '--backend', 'postgres', '--database-url', pg.server.url, '--sort', 'name'], { COLUMNS: '200' }, 60_000);
    expect(top.code, top.output).toBe(0);
    const header = top.output.split('\n').find((l) => l.startsWith('HEALTH'))!;
    for (const name of names) {
      const view = served.queues.find((q) => q.name === name)!;
      const row = top.output.split('\n').find((l) => l.includes(`bullmq:${name} `));
      expect(row, `${name} in\n${top.output}`).toBeDefined();
      // Right-aligned columns: a cell ends where its title ends in the header (render-top.ts).
      const cell = (title: string, width: number) => {
        const end = header.indexOf(title) + title.length;
        return row!.slice(end - width, end).trim();
      };
      expect(Number(cell('BACKLOG', 7)), `${name} backlog`).toBe(view.backlog);
      expect(cell('WORKERS', 7), `${name} workers`).toBe(String(view.workers));
      if (name === 'src') expect(cell('DLQ', 5), 'src DLQ').toBe(String(view.deadLetter?.jobs));
    }
    expect(served.queues.find((q) => q.name === 'src')?.deadLetter?.jobs).toBe(2);
  }, 180_000);
});
