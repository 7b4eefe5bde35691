// GET /api/queues and /api/queues/:queue: the queue board as JSON (docs/api/queues.schema.json).
import type { FastifyInstance } from 'fastify';
import type { QueuesResponse } from '../status/queue-view.js';

export interface QueuesApiOptions {
  queues: (opts: { history: boolean }) => QueuesResponse;
  /** The same document as JSON text, built without blocking (QueueBoard.responseJson); absent: queues() serialised. */
  queuesJson?: (opts: { history: boolean }) => Promise<string>;
}

interface Query {
  history?: string;
  prefix?: string;
}

const wantsHistory = (q: Query) => q.history === '1' || q.history === 'true';

export async function queuesApi(app: FastifyInstance, opts: QueuesApiOptions): Promise<void> {
  app.get<{ Querystring: Query }>('/api/queues', async (req, reply) => {
    reply.header('cache-control', 'no-store');
    const history = wantsHistory(req.query);
    if (opts.queuesJson) return reply.type('application/json; charset=utf-8').send(await opts.queuesJson({ history }));
    return reply.send(opts.queues({ history }));
  });

  app.get<{ Params: { queue: string }; Querystring: Query }>('/api/queues/:queue', async (req, reply) => {
    const res = opts.queues({ history: wantsHistory(req.query) });
    const { prefix } = req.query;
    const matches = res.queues.filter((q) => q.name === req.params.queue && (prefix === undefined || q.prefix === prefix));
    reply.header('cache-control', 'no-store');
    if (matches.length === 0) {
      const why = res.collection.ok ? 'no such queue in the last collection' : `no data: ${res.collection.error ?? 'collection failed'}`;
      return reply.code(404).send({ error: 'not_found', message: `queue ${JSON.stringify(req.params.queue)}: ${why}` });
    }
    if (matches.length > 1) {
      const prefixes = matches.map((q) => q.prefix);
      return reply
        .code(409)
        .send({ error: 'ambiguous', message: `queue ${JSON.stringify(req.params.queue)} exists under prefixes ${prefixes.join(', ')}: add ?prefix=` });
    }
    const { queues: _all, ...rest } = res;
    return reply.send({ ...rest, queue: matches[0] });
  });
}
