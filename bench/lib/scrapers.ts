// Scrape load for the sidecar benchmark, and the floor it is judged against.
//
// burstScrapers(): N keep-alive connections; every 1/rate s all of them send `GET /metrics` in the same instant,
// and each latency runs from that request's write to the last byte of its answer. The client reads the status
// line and Content-Length and counts body bytes, nothing more, so its own cost stays far below the server's:
// unlike autocannon, whose JavaScript HTTP parser, handling 50 × 90 KB answers per burst on the same 2 CPUs,
// takes longer than the server that produced them (see floorServer()).
//
// floorServer(): a bare node:http server in its own process that answers every request with fixed bytes.
// The same load against it, in the same run, shows what the client and the machine add on their own.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface BurstResult {
  requests: number;
  /** Answers other than 200, and connection errors. */
  errors: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

interface Conn {
  socket: Socket;
  head: Buffer;
  remaining: number;
  status: number;
  sentAt: number;
  done?: (ok: boolean) => void;
}

export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * q) - 1))] ?? NaN;
}

function open(port: number, onAnswer: (c: Conn, ok: boolean) => void): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const c: Conn = { socket, head: Buffer.alloc(0), remaining: -1, status: 0, sentAt: 0 };
    socket.setNoDelay(true);
    socket.once('connect', () => resolve(c));
    socket.once('error', (err) => (c.done ? onAnswer(c, false) : reject(err)));
    socket.on('data', (chunk: Buffer) => {
      let body = chunk;
      if (c.remaining < 0) {
        c.head = Buffer.concat([c.head, chunk]);
        const end = c.head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = c.head.subarray(0, end).toString('latin1');
        const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
        if (length === undefined) throw new Error(`an answer without Content-Length: ${head.split('\r\n')[0]}`);
        c.status = Number(head.slice(9, 12));
        c.remaining = Number(length);
        body = c.head.subarray(end + 4);
        c.head = Buffer.alloc(0);
      }
      c.remaining -= body.length;
      if (c.remaining <= 0) {
        c.remaining = -1;
        onAnswer(c, c.status === 200);
      }
    });
  });
}

export async function burstScrapers(o: {
  port: number;
  path: string;
  connections: number;
  ratePerConnection: number;
  durationS: number;
  headers: Record<string, string>;
}): Promise<BurstResult> {
  const request = `GET ${o.path} HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\n${Object.entries(o.headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  const latencies: number[] = [];
  let errors = 0;
  const conns = await Promise.all(
    Array.from({ length: o.connections }, () =>
      open(o.port, (c, ok) => {
        latencies.push(performance.now() - c.sentAt);
        if (!ok) errors += 1;
        const done = c.done;
        c.done = undefined;
        done?.(ok);
      }),
    ),
  );
  const periodMs = 1000 / o.ratePerConnection;
  const end = performance.now() + o.durationS * 1000;
  try {
    for (let next = performance.now(); next < end; next += periodMs) {
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // A burst: every connection asks at once, and the next burst waits for the slowest answer of this one
      // (a scraper never has two scrapes in flight).
      await Promise.all(
        conns.map(
          (c) =>
            new Promise<boolean>((resolve) => {
              c.done = resolve;
              c.sentAt = performance.now();
              c.socket.write(request);
            }),
        ),
      );
    }
  } finally {
    for (const c of conns) c.socket.destroy();
  }
  latencies.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    requests: latencies.length,
    errors,
    p50: r(quantile(latencies, 0.5)),
    p90: r(quantile(latencies, 0.9)),
    p99: r(quantile(latencies, 0.99)),
    max: r(latencies.at(-1) ?? NaN),
  };
}

export interface FloorServer {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** A bare node:http server in its own process answering every request with `body` and `headers`. */
export async function floorServer(body: Buffer, headers: Record<string, string>): Promise<FloorServer> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-floor-'));
  writeFileSync(join(dir, 'body'), body);
  const code = `
    const http = require('node:http');
    const body = require('node:fs').readFileSync(process.argv[1]);
    const headers = { ...JSON.parse(process.argv[2]), 'content-length': body.length };
    const server = http.createServer((req, res) => { req.resume(); res.writeHead(200, headers); res.end(body); });
    server.keepAliveTimeout = 72000;
    server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;
  const proc: ChildProcess = spawn(process.execPath, ['-e', code, join(dir, 'body'), JSON.stringify(headers)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    proc.once('exit', (code) => reject(new Error(`floor server exited with ${code}`)));
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    port,
    pid: proc.pid!,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
