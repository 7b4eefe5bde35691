// The demo's local peers, so email and webhook jobs really deliver: an SMTP sink and an HTTP webhook receiver,
// both on loopback. They honour the load generator's conventions for jobs built to fail: mail to `reject-*` is
// refused with 550 (permanent), `busy-*` with 451 (transient); a webhook URL with `?status=NNN` gets that
// status, and `?flaky=P` gets 503 with probability P (then succeeds on a retry). They count, never keep,
// what they receive: no addresses or payloads are stored or logged.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface DemoPeers {
  smtpUrl: string;
  webhookUrl: string;
  counts: { mailsAccepted: number; mailsRefused: number; webhooksOk: number; webhooksFailed: number };
  close(): Promise<void>;
}

export interface DemoPeersOptions {
  /** Address both listen on; default loopback. */
  host?: string;
  /** 0 = any free port. */
  smtpPort?: number;
  httpPort?: number;
}

export async function startDemoPeers(o: DemoPeersOptions = {}): Promise<DemoPeers> {
  const host = o.host ?? '127.0.0.1';
  // What a client on this machine dials: a wildcard address is reachable on loopback.
  const dial = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const counts = { mailsAccepted: 0, mailsRefused: 0, webhooksOk: 0, webhooksFailed: 0 };
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo(address, _session, cb) {
      const local = address.address.split('@')[0] ?? '';
      if (local.startsWith('reject')) {
        counts.mailsRefused += 1;
        return cb(Object.assign(new Error('5.1.1 mailbox unavailable'), { responseCode: 550 }));
      }
      if (local.startsWith('busy')) {
        counts.mailsRefused += 1;
        return cb(Object.assign(new Error('4.2.1 try again later'), { responseCode: 451 }));
      }
      cb();
    },
    onData(stream, _session, cb) {
      stream.on('data', () => undefined);
      stream.on('end', () => {
        counts.mailsAccepted += 1;
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(o.smtpPort ?? 0, host, resolve));
  const smtpPort = (smtp.server.address() as AddressInfo).port;

  const http: Server = createServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://demo');
      const forced = Number(url.searchParams.get('status') ?? 0);
      const flaky = Number(url.searchParams.get('flaky') ?? 0);
      const status = forced >= 100 && forced <= 599 ? forced : Math.random() < flaky ? 503 : 200;
      if (status < 300) counts.webhooksOk += 1;
      else counts.webhooksFailed += 1;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'demo failure');
    });
  });
  await new Promise<void>((resolve) => http.listen(o.httpPort ?? 0, host, resolve));
  const httpPort = (http.address() as AddressInfo).port;

  let closed: Promise<void> | undefined;
  return {
    smtpUrl: `smtp://${dial}:${smtpPort}`,
    webhookUrl: `http://${dial}:${httpPort}/hooks/demo`,
    counts,
    close() {
      closed ??= Promise.all([
        new Promise<void>((resolve) => smtp.close(() => resolve())),
        new Promise<void>((resolve) => {
          http.closeAllConnections();
          http.close(() => resolve());
        }),
      ]).then(() => undefined);
      return closed;
    },
  };
}
