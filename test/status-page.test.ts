// The status page in a real headless Chromium against a sidecar on loopback with a live workload: the table
// shows exactly what /api/queues answered, updates by itself, sorts, fits a phone, and raises no errors
// (a CSP violation would be one). The workload is the demo's (real workers, peers and load generator), so rates
// and latencies are real. With QUEUELENS_SCREENSHOTS=1 it saves docs/img/status-page*.png for the README;
// otherwise the screenshots go to a temporary directory, so a test run leaves the working tree as it was.
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoStack, type DemoStack } from '../src/demo/demo-stack.js';
import { createLogger } from '../src/log/logger.js';
import { OWN_PREFIX_DEFAULT } from '../src/redis/keys.js';
import type { QueuesResponse } from '../src/status/queue-view.js';
import { launchChromium } from './helpers/browser.js';

function shot(name: string): string {
  const dir = process.env.QUEUELENS_SCREENSHOTS ? new URL('../docs/img/', import.meta.url).pathname : mkdtempSync(join(tmpdir(), 'queuelens-shots-'));
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
import { BullFixtures } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
let bull: BullFixtures;
let stack: DemoStack;
let browser: Browser;
let base: string;
const seen = new Map<string, QueuesResponse>();
const problems: string[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  // A queue nobody consumes (critical), next to the demo's workload: real workers, peers and load generator.
  const reports = bull.queue('reports');
  for (let i = 0; i < 12; i += 1) await reports.add('build', { i }, { timestamp: Date.now() - 420_000 });
  stack = await startDemoStack({
    redisUrl: redis.url,
    prefix: 'bull',
    ownPrefix: OWN_PREFIX_DEFAULT,
    host: '127.0.0.1',
    port: 0,
    rate: 20,
    prometheusPort: 0,
    collectIntervalSeconds: 0.5,
    logLevel: 'silent',
    log: createLogger({ level: 'silent' }),
  });
  base = stack.sidecarUrl;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
  await bull?.close();
  await redis?.stop();
});

async function openPage(viewport: { width: number; height: number }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  page.on('response', async (res) => {
    if (!res.url().includes('/api/queues')) return;
    const body = (await res.json().catch(() => undefined)) as QueuesResponse | undefined;
    if (body) seen.set(body.generatedAt, body);
  });
  await page.goto(base);
  await page.waitForSelector('body[data-updated] tr.row');
  return page;
}

/** The payload the page rendered last, and its table as text. */
async function rendered(page: Page): Promise<{ payload: QueuesResponse; rows: string[][] }> {
  const at = await page.getAttribute('body', 'data-updated');
  const rows = await page.$$eval('tr.row', (trs) =>
    trs.map((tr) => [tr.getAttribute('data-queue')!, ...[...tr.querySelectorAll('td')].map((td) => td.textContent!.trim())]),
  );
  const payload = seen.get(at!);
  if (!payload) throw new Error(`the page rendered ${at}, a response it never received`);
  return { payload, rows };
}

const cells = (row: string[]) => ({ id: row[0], health: row[1], name: row[2], backlog: row[3], age: row[6], dlq: row[11], workers: row[12] });

describe('status page', () => {
  it('renders the rows and values of /api/queues, worst first, and links runbooks', async () => {
    const page = await openPage({ width: 1280, height: 860 });
    await page.waitForFunction(() => document.querySelectorAll('tr.row').length >= 5);
    const { payload, rows } = await rendered(page);
    expect(rows.map((r) => r[0])).toEqual(payload.queues.map((q) => `${q.prefix}:${q.name}`));
    for (const [i, q] of payload.queues.entries()) {
      const c = cells(rows[i]!);
      expect(c.health).toBe(q.health.status);
      expect(c.name?.startsWith(q.name)).toBe(true);
      expect(c.backlog).toBe(String(q.backlog));
      expect(c.workers).toBe(q.workers === null ? '?' : String(q.workers));
      expect(c.dlq).toBe(q.deadLetter ? String(q.deadLetter.jobs) : '—');
    }
    // The unconsumed queue is first, critical, and its reasons link to the runbooks.
    expect(cells(rows[0]!)).toMatchObject({ id: 'bull:reports', health: 'critical', backlog: '12', workers: '0', age: expect.stringMatching(/^7m \d{1,2}s$/) });
    const links = await page.$$eval('tr[data-queue="bull:reports"] ul.reasons a', (as) => as.map((a) => a.getAttribute('href')));
    expect(links).toEqual(['/runbooks/BullMQNoWorkers.md', '/runbooks/BullMQOldestJobTooOld.md']);
    // The demo's accounting reaches the page: a busy queue's throughput is a number, not a dash.
    await page.waitForFunction(() => /\d/.test(document.querySelector('tr[data-queue="bull:email"] td[data-col="out"]')?.textContent ?? ''), undefined, {
      timeout: 15_000,
    });
    expect(problems).toEqual([]);
    await page.close();
  });

  it('updates by itself, sorts on a column click, and takes the README screenshot', async () => {
    const page = await openPage({ width: 1280, height: 860 });
    const backlog = () => page.$eval('tr[data-queue="bull:reports"] td[data-col="backlog"]', (td) => td.textContent);
    expect(await backlog()).toBe('12');
    const reports = bull.queue('reports');
    for (let i = 0; i < 7; i += 1) await reports.add('build', { late: i });
    await page.waitForFunction(() => document.querySelector('tr[data-queue="bull:reports"] td[data-col="backlog"]')?.textContent === '19', undefined, {
      timeout: 15_000,
    });

    await page.click('th[data-sort="name"]');
    const names = await page.$$eval('tr.row .qname', (els) => els.map((e) => e.textContent!));
    expect(names).toEqual([...names].sort((a, b) => a.localeCompare(b)));
    await page.click('th[data-sort="name"]');
    const reversed = await page.$$eval('tr.row .qname', (els) => els.map((e) => e.textContent!));
    expect(reversed).toEqual([...names].reverse());
    await page.click('th[data-sort="badness"]');

    // Let the charts gather some history, open one queue's charts, and take the picture.
    await new Promise((r) => setTimeout(r, 8000));
    await page.click('tr[data-queue="bull:email"] td.l .qname');
    await page.waitForSelector('tr.detail .chart svg');
    await page.screenshot({ path: shot('status-page.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });

  it('says STALE across the whole page when the sidecar stops answering, and recovers by itself', async () => {
    const page = await openPage({ width: 1280, height: 860 });
    const before = problems.length;
    // The sidecar dies, as far as the page can tell: every request to it is refused.
    await page.route('**/api/queues*', (route) => route.abort('connectionrefused'));
    await page.waitForFunction(() => document.body.classList.contains('stale'), undefined, { timeout: 60_000 });
    const banner = page.locator('#stale');
    expect(await banner.isVisible()).toBe(true);
    expect(await banner.textContent()).toMatch(/^STALE: the sidecar has not answered for \d+ s \(.+\)\. Everything below is from .+ and may be wrong now\.$/);
    expect(await page.title()).toMatch(/^STALE · /);
    expect(await page.textContent('#livetext')).toMatch(/^STALE · no answer for \d+ s$/);
    // The old numbers are still there, but visibly not current.
    expect(await page.$eval('.tablewrap', (el) => getComputedStyle(el).filter)).toContain('grayscale');
    await page.unroute('**/api/queues*');
    await page.waitForFunction(() => !document.body.classList.contains('stale'), undefined, { timeout: 60_000 });
    expect(await banner.isVisible()).toBe(false);
    expect(await page.title()).toBe('queuelens · queues');
    // The refused requests are what this test caused, not a problem of the page.
    problems.splice(before);
    await page.close();
  });

  it('turns rows into labelled cards that fit a phone screen without sideways scrolling', async () => {
    const page = await openPage({ width: 390, height: 844 });
    // A card leaves out what has no value yet (p95 needs the event reader's first histogram for the queue, which a
    // loaded machine may not have committed yet): wait for it rather than for the clock.
    await page.waitForSelector('tr[data-queue="bull:reports"] td[data-col="p95"]', { state: 'visible', timeout: 60_000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    // Every cell measured in one evaluation: the page replaces its rows at each refresh (2 s apart), and a cell looked
    // up, then measured in a second round trip could be detached in between (null at load 20). null: no layout box
    // (display: none, or no such cell), as locator.boundingBox() says of an element that is not visible.
    const cols = ['backlog', 'age', 'dlq', 'workers', 'out', 'p95'];
    const boxes = await page.evaluate(
      (names) =>
        names.map((col) => {
          const td = document.querySelector(`tr[data-queue="bull:reports"] td[data-col="${col}"]`);
          if (!td || td.getClientRects().length === 0) return null;
          const r = td.getBoundingClientRect();
          return { x: r.x, width: r.width };
        }),
      cols,
    );
    for (const [i, col] of cols.entries()) {
      expect(boxes[i], col).not.toBeNull();
      expect(boxes[i]!.x + boxes[i]!.width, col).toBeLessThanOrEqual(390);
    }
    const label = await page.$eval('tr[data-queue="bull:reports"] td[data-col="backlog"]', (td) => getComputedStyle(td, '::before').content);
    expect(label).toBe('"Backlog"');
    await page.screenshot({ path: shot('status-page-phone.png') });
    expect(problems).toEqual([]);
    await page.close();
  });
});
