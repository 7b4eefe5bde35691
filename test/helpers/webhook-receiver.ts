// A real HTTP receiver on loopback for webhook tests: records every delivery, checks its signature with
// the shared secret, and answers with scripted statuses (default 200; `?status=NNN` forces one, `?delay=ms` holds the reply, `?hold-first=ms` holds only the path's first one).
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { verifyWebhook } from '../../src/workers/webhook-signature.js';
import { waitFor } from './bullmq.js';

export interface Delivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  signatureValid: boolean;
  answered: number;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  /** Hold the response this long (to trigger timeouts). */
  delayMs?: number;
}

export interface WebhookReceiver {
  url: string;
  deliveries: Delivery[];
  /** Replies used in order before falling back to 200. */
  script(...replies: Reply[]): void;
  waitFor(count: number, timeoutMs?: number): Promise<Delivery[]>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  const deliveries: Delivery[] = [];
  const scripted: Reply[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url ?? '/', 'http://x');
      const forced = url.searchParams.get('status');
      const reply: Reply = forced ? { status: Number(forced) } : (scripted.shift() ?? { status: 200 });
      if (url.searchParams.has('delay')) reply.delayMs = Number(url.searchParams.get('delay'));
      if (url.searchParams.has('hold-first') && !deliveries.some((d) => d.path === url.pathname)) reply.delayMs = Number(url.searchParams.get('hold-first'));
      const signatureValid = verifyWebhook(secret, body, String(req.headers['x-queuelens-signature'] ?? ''));
      deliveries.push({ path: url.pathname, headers: req.headers, body, signatureValid, answered: reply.status });
      const send = () => res.writeHead(reply.status, reply.headers).end(signatureValid ? 'ok' : 'bad signature');
      if (reply.delayMs) setTimeout(send, reply.delayMs).unref();
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    deliveries,
    script: (...replies) => void scripted.push(...replies),
    waitFor: (count, timeoutMs = 20_000) => waitFor(`${count} deliveries`, () => deliveries.length >= count && deliveries, timeoutMs),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
