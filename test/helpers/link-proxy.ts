// A loopback proxy to Redis that a test can steer per byte stream: swallow Redis's answers (dropReplies), break every
// link (cut), or hold what a client sends from the moment it sends a marker until release(). Unlike tcp-proxy.ts
// (which freezes the whole process), it acts on one direction or one command.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class LinkProxy {
  /** While true, nothing Redis answers reaches the clients. */
  dropReplies = false;
  /** Chunks held since a client sent holdFrom()'s marker. */
  held = 0;
  private marker?: string;
  private holding = false;
  private readonly waiting: Array<() => void> = [];
  private readonly links = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  static async start(targetPort: number): Promise<LinkProxy> {
    const server = createServer();
    const proxy = new LinkProxy(server);
    server.on('connection', (client) => {
      const upstream = createConnection(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        proxy.links.add(s);
        s.on('close', () => proxy.links.delete(s));
        s.on('error', () => {});
      }
      client.on('data', (d: Buffer) => {
        if (proxy.marker !== undefined && d.includes(proxy.marker)) proxy.holding = true;
        if (!proxy.holding) return upstream.write(d);
        proxy.held += 1;
        proxy.waiting.push(() => upstream.write(d));
      });
      upstream.on('data', (d) => proxy.dropReplies || client.write(d));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** From the first chunk a client sends that contains `marker`, hold everything clients send until release(). */
  holdFrom(marker: string): void {
    this.marker = marker;
  }

  release(): void {
    this.holding = false;
    this.marker = undefined;
    for (const send of this.waiting.splice(0)) send();
  }

  /** Breaks every link and carries answers again on the ones clients open next. */
  cut(): void {
    for (const s of this.links) s.destroy();
    this.dropReplies = false;
  }

  async close(): Promise<void> {
    this.release();
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
