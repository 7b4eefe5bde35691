// `queuelens demo`'s options.
import { backendOption, databaseUrlOption, logLevelOption, redisUrlOption } from './common.js';
import { option, parse } from './options.js';

export const demoOptions = [
  redisUrlOption,
  backendOption,
  {
    ...databaseUrlOption,
    description:
      'with --backend postgres: the PostgreSQL the demo uses (schemas queuelens_demo and queuelens_demo_sidecar); unset or not answering = a private server (initdb) removed on exit',
  },
  option({
    name: 'port',
    env: 'QUEUELENS_PORT',
    arg: '<port>',
    description: 'sidecar HTTP port (status page, /metrics, /api/queues)',
    default: '9487',
    parse: parse.port,
  }),
  option({ name: 'host', env: 'QUEUELENS_HOST', arg: '<host>', description: 'address the sidecar listens on', default: '127.0.0.1', parse: parse.string }),
  option({
    name: 'jobs-per-second',
    env: 'QUEUELENS_DEMO_RATE',
    arg: '<n>',
    description: 'demo jobs enqueued per second',
    default: '10',
    parse: parse.number({ min: 0.1, max: 10_000 }),
  }),
  option({
    name: 'prometheus-port',
    env: 'QUEUELENS_DEMO_PROMETHEUS_PORT',
    arg: '<port>',
    description: 'port of the demo Prometheus (started only when `prometheus` is on PATH); 0 = none',
    default: '9090',
    parse: parse.number({ min: 0, max: 65_535, integer: true }),
  }),
  option({
    name: 'keep',
    env: 'QUEUELENS_DEMO_KEEP',
    description:
      "keep the demo's Redis keys (prefixes queuelens-demo and queuelens-demo-sidecar), or its PostgreSQL schemas, on exit, for a look afterwards; the next demo start removes them",
    parse: parse.boolean,
  }),
  // Quiet by default: the demo's dead letters are planned, and the printed URLs should stay readable.
  { ...logLevelOption, default: 'error' },
] as const;

// `queuelens demo-peers`' options: the demo's SMTP sink and webhook receiver on their own (docker-compose.yml).
export const demoPeersOptions = [
  option({
    name: 'host',
    env: 'DEMO_PEERS_HOST',
    arg: '<host>',
    description: 'address the SMTP sink and the webhook receiver listen on',
    default: '127.0.0.1',
    parse: parse.string,
  }),
  option({
    name: 'smtp-port',
    env: 'DEMO_PEERS_SMTP_PORT',
    arg: '<port>',
    description: 'SMTP sink port (mail to reject-* is refused with 550, busy-* with 451)',
    default: '1025',
    parse: parse.port,
  }),
  option({
    name: 'http-port',
    env: 'DEMO_PEERS_HTTP_PORT',
    arg: '<port>',
    description: 'webhook receiver port (?status=NNN answers NNN, ?flaky=P answers 503 with probability P)',
    default: '8080',
    parse: parse.port,
  }),
  logLevelOption,
] as const;
