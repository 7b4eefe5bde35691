// A real SMTP server on loopback (smtp-server) that keeps what it receives. Recipients whose local part
// starts with `reject` get 550 (permanent), `busy` gets 451 (transient); everything else is accepted.
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { waitFor } from './bullmq.js';

export interface ReceivedMail {
  envelopeTo: string[];
  parsed: ParsedMail;
  raw: string;
}

export interface SmtpSink {
  url: string;
  port: number;
  mails: ReceivedMail[];
  /** Recipient attempts per address, accepted or not. */
  attempts: Map<string, number>;
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const mails: ReceivedMail[] = [];
  const attempts = new Map<string, number>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo(address, _session, cb) {
      const addr = address.address;
      attempts.set(addr, (attempts.get(addr) ?? 0) + 1);
      const local = addr.split('@')[0] ?? '';
      if (local.startsWith('reject')) return cb(Object.assign(new Error('5.1.1 mailbox unavailable'), { responseCode: 550 }));
      if (local.startsWith('busy')) return cb(Object.assign(new Error('4.2.1 try again later'), { responseCode: 451 }));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        simpleParser(raw)
          .then((parsed) => {
            mails.push({ envelopeTo: session.envelope.rcptTo.map((r) => r.address), parsed, raw });
            cb();
          })
          .catch(cb);
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as { port: number }).port;
  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    mails,
    attempts,
    waitFor: (count, timeoutMs = 20_000) => waitFor(`${count} mails`, () => mails.length >= count && mails, timeoutMs),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
