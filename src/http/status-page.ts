// GET / (the status page, one self-contained HTML file) and GET /runbooks/<AlertName>.md (the runbooks the
// page links to, served from docs/runbooks so they are reachable offline, next to the data).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';

// Read from src/ both when running from src (tests) and from dist: they sit at the same depth.
const PAGE_URL = new URL('../../src/http/status-page.html', import.meta.url);
const RUNBOOKS_URL = new URL('../../docs/runbooks/', import.meta.url);

let cached: { html: string; csp: string } | undefined;

function page(): { html: string; csp: string } {
  if (cached) return cached;
  const html = readFileSync(PAGE_URL, 'utf8');
  // Allow exactly the page's own inline script (by hash) and nothing from anywhere else.
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
  const csp = [
    "default-src 'none'",
    `script-src ${scripts.join(' ')}`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  cached = { html, csp };
  return cached;
}

export async function statusPage(app: FastifyInstance): Promise<void> {
  app.get('/', async (_req, reply) => {
    const { html, csp } = page();
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', csp)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(html);
  });

  app.get<{ Params: { name: string } }>('/runbooks/:name', async (req, reply) => {
    const m = /^(BullMQ[A-Za-z]+)\.md$/.exec(req.params.name);
    if (!m) return reply.code(404).send({ error: 'not_found', message: 'runbooks are named BullMQ<Alert>.md' });
    try {
      const text = await readFile(new URL(`${m[1]}.md`, RUNBOOKS_URL), 'utf8');
      return reply.header('content-type', 'text/markdown; charset=utf-8').header('x-content-type-options', 'nosniff').send(text);
    } catch {
      return reply.code(404).send({ error: 'not_found', message: `no runbook ${m[1]}.md in docs/runbooks` });
    }
  });
}
