// A bare RESP2 connection to a standalone Redis that sends one command, XREAD, and hands its reply back as raw
// bytes: the event reader's reply is too hot for ioredis, and events/stream-reply.ts parses it without building a
// value per field. Connects from a redis:// or rediss:// URL (user, password, db, TLS) and names itself.
// Like the reader's ioredis blocking connection it waits through outages: it reconnects for ever with
// reconnectDelay and sends again the XREADs that had no reply, which is safe only because XREAD writes nothing;
// that is why it sends nothing else. A peer that vanished without closing (a half-open link) is found by TCP
// keep-alive, and a reply that does not arrive within its BLOCK time plus readTimeoutMs drops the link.
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../log/logger.js';
import { RepeatLimiter } from '../log/repeat-limiter.js';
import { redactString, safeUrl } from '../log/redact.js';
import { reconnectDelay } from './connection.js';

export interface RawConnectionOptions {
  url: string;
  /** Connection name shown in CLIENT LIST. */
  name?: string;
  log?: Logger;
  connectTimeoutMs?: number;
  /**
   * How long past its BLOCK time a reply (or a handshake step) may take before the link is taken for dead,
   * dropped, and the XREAD sent again on a new one. Default 5000.
   */
  readTimeoutMs?: number;
  /** Idle time before TCP keep-alive probes start. Default 10000. */
  keepAliveMs?: number;
}

/** One XREAD: `streams` is the keys, then one id per key, as Redis takes them. */
export interface XreadCall {
  count: number;
  /** BLOCK milliseconds; undefined: return at once. 0 (block for ever) disables the read deadline. */
  block?: number;
  streams: readonly string[];
  /** Most bytes the reply may have: past them the connection is dropped and the call rejects. */
  maxReplyBytes?: number;
}

/** An error reply from Redis (`-ERR …`). */
export class RedisReplyError extends Error {}
/** A reply grew past the caller's maxReplyBytes: it was dropped with its connection (which reconnects). */
export class ReplyTooLargeError extends Error {}

interface Request {
  payload: string;
  /** Part of the connection's handshake: fails with its socket instead of being sent again. */
  handshake?: boolean;
  /** Most bytes the reply may have: past them the connection is dropped and the call rejects. */
  maxReplyBytes?: number;
  /** How long Redis may hold the command before it answers (its BLOCK); undefined: for ever. */
  blockMs: number | undefined;
  resolve: (reply: Buffer) => void;
  reject: (err: Error) => void;
}

const CR = 13;
const LF = 10;

/**
 * Finds where each reply ends in the byte stream, across chunk boundaries, without decoding it: it counts
 * the elements of arrays and skips bulk strings by their length.
 */
export class ReplyFramer {
  /** Parts of the reply being received that arrived in earlier chunks. */
  private parts: Buffer[] = [];
  private partsBytes = 0;
  /** Elements still expected by each array being read, innermost last. */
  private open: number[] = [];
  /** Bytes of a bulk string (and its CRLF) still to skip. */
  private skip = 0;
  /** A header line cut by the end of a chunk. */
  private line: Buffer | undefined;

  /** Bytes of the reply being received, so far. */
  get pendingBytes(): number {
    return this.partsBytes;
  }

  /** Takes the next chunk; returns the replies it completed, each as one Buffer. */
  push(chunk: Buffer): Buffer[] {
    const done: Buffer[] = [];
    const end = chunk.length;
    let start = 0;
    let p = 0;
    while (p < end) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, end - p);
        this.skip -= n;
        p += n;
        if (this.skip > 0 || !this.elementDone()) continue;
      } else {
        let buf = chunk;
        let at = p;
        let lf = this.line ? -1 : lineEnd(chunk, p);
        if (lf < 0) {
          // A header cut by the end of a chunk (rare): put its parts together.
          const next = chunk.indexOf(LF, p);
          if (next < 0) {
            this.line = this.line ? Buffer.concat([this.line, chunk.subarray(p)]) : chunk.subarray(p);
            p = end;
            continue;
          }
          buf = this.line ? Buffer.concat([this.line, chunk.subarray(p, next + 1)]) : chunk.subarray(p, next + 1);
          this.line = undefined;
          at = 0;
          lf = buf.length - 1;
          p = next + 1;
        } else {
          p = lf + 1;
        }
        const type = buf[at];
        if (type === 42 || type === 36) {
          // `*n` array or `$n` bulk string; -1 is a null of either.
          const n = headerNumber(buf, at, lf);
          if (type === 42 && n > 0) {
            this.open.push(n);
            continue;
          }
          if (type === 36 && n >= 0) {
            this.skip = n + 2;
            continue;
          }
        } else if (type !== 43 && type !== 45 && type !== 58) {
          throw new Error(`unexpected RESP type byte ${String(type)}`);
        }
        if (!this.elementDone()) continue;
      }
      // A whole reply ends at p.
      const piece = chunk.subarray(start, p);
      done.push(this.parts.length === 0 ? piece : Buffer.concat([...this.parts, piece], this.partsBytes + piece.length));
      this.parts = [];
      this.partsBytes = 0;
      start = p;
    }
    if (start < end) {
      this.parts.push(chunk.subarray(start));
      this.partsBytes += end - start;
    }
    return done;
  }

  /** An element ended: true when that completed the whole reply. */
  private elementDone(): boolean {
    const open = this.open;
    while (open.length > 0) {
      const last = open.length - 1;
      if (--(open[last] as number) > 0) return false;
      open.pop();
    }
    return true;
  }
}

/** Index of the LF ending the line that starts at p, or -1 when the chunk ends first. */
function lineEnd(b: Buffer, p: number): number {
  // Headers are a few bytes: a loop beats indexOf's native call.
  for (let i = p + 1; i < b.length; i++) if (b[i] === LF) return i;
  return -1;
}

/** The integer of a `*n` or `$n` header line b[at, lf]. */
function headerNumber(b: Buffer, at: number, lf: number): number {
  const neg = b[at + 1] === 45;
  const first = neg ? at + 2 : at + 1;
  let i = first;
  let n = 0;
  for (; i < lf - 1; i++) {
    const c = b[i] as number;
    if (c < 48 || c > 57) break;
    n = n * 10 + c - 48;
  }
  if (i !== lf - 1 || b[i] !== CR || i === first) throw new Error(`bad RESP header ${JSON.stringify(b.toString('latin1', at, Math.min(lf + 1, at + 40)))}`);
  return neg ? -n : n;
}

function encode(args: readonly (string | number)[]): string {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const s = String(a);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

export class RawConnection {
  private socket: net.Socket | undefined;
  private ready = false;
  private opening: Promise<void> | undefined;
  /** Sent on the current socket, waiting for their replies (in order). */
  private inflight: Request[] = [];
  /** Not sent yet: waiting for the connection. */
  private queued: Request[] = [];
  private closed = false;
  private failing = false;
  private readonly errors = new RepeatLimiter();
  private wake: (() => void) | undefined;
  /** Starts the read deadline of the current socket's oldest command, if it has none yet. */
  private arm: () => void = () => {};
  private readonly target: { host: string; port: number; tls: boolean; handshake: Array<Array<string | number>> };

  constructor(private readonly o: RawConnectionOptions) {
    const u = new URL(o.url);
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`expected a redis:// or rediss:// URL, got ${u.protocol}`);
    const handshake: Array<Array<string | number>> = [];
    const password = decodeURIComponent(u.password);
    const username = decodeURIComponent(u.username);
    // As ioredis: AUTH with the user only when there is one (ACL), and only when there is a password.
    if (password) handshake.push(username ? ['AUTH', username, password] : ['AUTH', password]);
    const db = Number(u.pathname.slice(1) || 0);
    if (db) handshake.push(['SELECT', db]);
    if (o.name) handshake.push(['CLIENT', 'SETNAME', o.name]);
    this.target = { host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(u.port || 6379), tls: u.protocol === 'rediss:', handshake };
  }

  /**
   * Sends one XREAD; resolves with its whole reply, raw. An error reply rejects with RedisReplyError; a reply
   * longer than maxReplyBytes is not held in memory past that: the connection is dropped (and opened again) and
   * the call rejects with ReplyTooLargeError.
   */
  xread(x: XreadCall): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('Connection is closed.'));
    const args =
      x.block === undefined ? ['XREAD', 'COUNT', x.count, 'STREAMS', ...x.streams] : ['XREAD', 'COUNT', x.count, 'BLOCK', x.block, 'STREAMS', ...x.streams];
    return new Promise<Buffer>((resolve, reject) => {
      const req: Request = { payload: encode(args), maxReplyBytes: x.maxReplyBytes, blockMs: x.block === 0 ? undefined : (x.block ?? 0), resolve, reject };
      if (this.ready && this.socket) {
        this.inflight.push(req);
        this.socket.write(req.payload);
        this.arm();
      } else {
        this.queued.push(req);
        this.opening ??= this.open().finally(() => (this.opening = undefined));
      }
    });
  }

  /** Closes at once; whatever waits for a reply (a blocking XREAD) is rejected. Idempotent. */
  disconnect(): void {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    this.socket?.destroy();
    this.socket = undefined;
    const err = new Error('Connection is closed.');
    for (const r of [...this.inflight, ...this.queued]) r.reject(err);
    this.inflight = [];
    this.queued = [];
  }

  /** Connects (retrying for ever), then sends what was queued. */
  private async open(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this.connect();
      } catch (err) {
        if (this.closed) return;
        this.failed(err as Error);
        await this.sleep(reconnectDelay(attempt));
        continue;
      }
      const socket = this.socket;
      if (!socket) continue; // closed again right after its handshake
      if (this.failing) this.o.log?.info({ redis: safeUrl(this.o.url) }, 'redis connection restored');
      this.failing = false;
      this.errors.reset();
      this.ready = true;
      const queued = this.queued;
      this.queued = [];
      for (const r of queued) this.inflight.push(r);
      if (queued.length > 0) socket.write(queued.map((r) => r.payload).join(''));
      this.arm();
      return;
    }
  }

  private async connect(): Promise<void> {
    const { host, port } = this.target;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = this.target.tls ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host }) : net.connect({ host, port });
      s.setTimeout(this.o.connectTimeoutMs ?? 5000, () => s.destroy(new Error('connect ETIMEDOUT')));
      s.once(this.target.tls ? 'secureConnect' : 'connect', () => {
        s.setTimeout(0);
        s.removeListener('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
    if (this.closed) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, this.o.keepAliveMs ?? 10_000);
    const framer = new ReplyFramer();
    const mine: Request[] = [];
    this.socket = socket;
    this.inflight = mine;
    // The read deadline of the oldest command without a reply (replies come in order); a later one's clock
    // starts when the one before it is answered, so a long BLOCK ahead of it does not count against it.
    let deadline: NodeJS.Timeout | undefined;
    let timed: Request | undefined;
    const arm = (): void => {
      const head = mine[0];
      if (head === timed) return;
      clearTimeout(deadline);
      deadline = undefined;
      timed = head;
      if (head?.blockMs === undefined) return;
      deadline = setTimeout(
        () => socket.destroy(new Error('no reply within the read deadline: the link is taken for dead')),
        head.blockMs + (this.o.readTimeoutMs ?? 5000),
      );
      deadline.unref();
    };
    socket.on('data', (chunk: Buffer) => {
      let replies: Buffer[];
      try {
        replies = framer.push(chunk);
      } catch (err) {
        socket.destroy(err as Error);
        return;
      }
      const head = mine[replies.length];
      if (head?.maxReplyBytes !== undefined && framer.pendingBytes > head.maxReplyBytes) {
        // The rest of this reply would still arrive on the socket: only a new connection gets rid of it.
        mine.splice(replies.length, 1);
        head.reject(new ReplyTooLargeError(`reply over ${head.maxReplyBytes} bytes`));
        socket.destroy();
      }
      for (const reply of replies) {
        const req = mine.shift();
        if (!req) continue;
        if (reply[0] === 45) req.reject(new RedisReplyError(reply.toString('utf8', 1, reply.length - 2)));
        else req.resolve(reply);
      }
      arm();
    });
    socket.on('error', (err) => this.failed(err));
    socket.on('close', () => {
      clearTimeout(deadline);
      this.lost(socket, mine);
    });
    this.arm = arm;
    // The handshake goes first; a failure (WRONGPASS, a bad db) closes the socket and is retried.
    const handshake = this.target.handshake.map(
      (args) =>
        new Promise<Buffer>((resolve, reject) => {
          const req = { payload: encode(args), handshake: true, blockMs: 0, resolve, reject };
          mine.push(req);
          socket.write(req.payload);
          arm();
        }),
    );
    try {
      await Promise.all(handshake);
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /** The socket closed: XREADs without a reply are sent again once connected again. */
  private lost(socket: net.Socket, mine: Request[]): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    this.ready = false;
    if (this.closed) return;
    const again: Request[] = [];
    for (const r of mine.splice(0)) {
      if (r.handshake) r.reject(new Error('connection closed during the handshake'));
      else again.push(r);
    }
    this.queued = [...again, ...this.queued];
    if (this.queued.length > 0) this.opening ??= this.open().finally(() => (this.opening = undefined));
  }

  private failed(err: Error): void {
    // Like createRedis: each distinct error once a minute, with its repeats, until the connection is restored.
    if (this.closed) return;
    const msg = redactString(err.message);
    this.failing = true;
    const r = this.errors.check(msg);
    if (r.log) this.o.log?.warn({ redis: safeUrl(this.o.url), err: msg, ...(r.repeated ? { repeated: r.repeated } : {}) }, 'redis connection error');
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref();
      this.wake = done;
    });
  }
}
