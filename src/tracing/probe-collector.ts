// Owns the start-up check that an OTLP collector listens where OTEL_* says: one TCP connection, so a typo'd
// host or a collector that is not running is reported when the process starts, not discovered in an empty
// tracing backend days later. Works for OTLP/HTTP and gRPC alike (both are TCP).
import { connect } from 'node:net';

/** Undefined when something accepts a connection at the endpoint; else why not (e.g. `ECONNREFUSED`). */
export function probeCollector(url: URL, timeoutMs = 3000): Promise<string | undefined> {
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.unref();
    const done = (problem?: string) => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer from ${host}:${port} within ${timeoutMs / 1000} s`));
    socket.once('connect', () => done());
    socket.once('error', (err: NodeJS.ErrnoException) => done(`${err.code ?? err.message} at ${host}:${port}`));
  });
}
