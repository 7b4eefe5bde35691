// The compose stack and the Prometheus/Alertmanager/Grafana configs, checked without a Docker engine: the
// YAML parses, every file and service it references exists, host ports do not clash, the services the docs
// name are there, and promtool/amtool accept the configs.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { parse, parseDocument } from 'yaml';
import { settings } from '../src/thresholds/monitoring-settings.js';
import { requireBinary, run } from './helpers/prometheus-binaries.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (p: string): string => readFileSync(join(root, p), 'utf8');

interface Service {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: string[] | Record<string, unknown>;
  healthcheck?: { disable?: boolean };
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const composeDoc = parseDocument(read('docker-compose.yml'), { merge: true });
const compose = composeDoc.toJS({ maxAliasCount: 100 }) as Compose;
const services = compose.services;

const EXPECTED = {
  redis: 'the queues',
  'sidecar-1': 'sidecar replica',
  'sidecar-2': 'sidecar replica',
  'worker-email': 'email worker',
  'worker-webhook': 'webhook worker',
  'worker-export': 'export worker',
  loadgen: 'load generator',
  prometheus: 'metrics and alert rules',
  alertmanager: 'paging',
  grafana: 'dashboards',
  jaeger: 'OTLP trace backend',
  'demo-peers': 'SMTP sink and webhook target that fail on purpose, as in the local demo',
  'webhook-receiver': 'on-call hook',
};
// The environment the app reads (issues 2-4); anything else in an app service is a typo.
const APP_ENV = [
  'REDIS_URL',
  'QUEUELENS_PORT',
  'SMTP_URL',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_SERVICE_NAME',
  'QUEUELENS_ADMIN_TOKEN',
  'EXPORT_DIR',
  'LOG_LEVEL',
  'WEBHOOK_ALLOW',
  'WEBHOOK_SECRET',
  'LOADGEN_RATE',
  'LOADGEN_DURATION',
  'LOADGEN_WEBHOOK_TARGET',
  'LOADGEN_SCENARIO',
  'QUEUELENS_LOCK_DURATION',
  'QUEUELENS_STALLED_INTERVAL',
  'QUEUELENS_HEALTH_PORT',
  // Read by node: the heap sizing of the sidecars (as in deploy/k8s/base/sidecar.yaml) and of the export worker.
  'NODE_OPTIONS',
];

function hostPorts(s: Service): string[] {
  return (s.ports ?? []).map((p) => {
    const parts = String(p).split(':');
    return parts.length === 1 ? parts[0]! : parts[parts.length - 2]!;
  });
}

describe('docker-compose.yml', () => {
  test('parses without errors or warnings', () => {
    expect(composeDoc.errors).toEqual([]);
    expect(composeDoc.warnings).toEqual([]);
  });

  test('has every service the issue lists', () => {
    expect(Object.keys(services).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  test('every bind mount, build context and Dockerfile exists', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const source = v.split(':')[0]!;
        if (source.startsWith('.') || source.startsWith('/')) expect(existsSync(join(root, source)), `${name}: ${source}`).toBe(true);
        else expect(compose.volumes, `${name}: named volume ${source} is not declared`).toHaveProperty(source);
      }
      if (s.build !== undefined) {
        const ctx = typeof s.build === 'string' ? s.build : s.build.context;
        const dockerfile = typeof s.build === 'string' ? 'Dockerfile' : (s.build.dockerfile ?? 'Dockerfile');
        expect(existsSync(join(root, ctx, dockerfile)), `${name}: ${dockerfile}`).toBe(true);
      }
      expect(s.image ?? s.build, `${name} has neither image nor build`).toBeDefined();
    }
  });

  test('depends_on names existing services', () => {
    for (const [name, s] of Object.entries(services)) {
      const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
      for (const d of deps) expect(services, `${name} depends on ${d}`).toHaveProperty(d);
    }
  });

  test('no two services publish the same host port', () => {
    const seen = new Map<string, string>();
    for (const [name, s] of Object.entries(services)) {
      for (const port of hostPorts(s)) {
        expect(seen.get(port), `host port ${port} used by ${seen.get(port)} and ${name}`).toBeUndefined();
        seen.set(port, name);
      }
    }
  });

  test('app services run a queuelens subcommand with only the environment the app reads', () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.build === undefined) continue;
      expect(['sidecar', 'worker', 'loadgen', 'demo-peers'], name).toContain(s.command?.[0]);
      if (s.command?.[0] === 'worker') expect(['email', 'webhook', 'export', 'all'], name).toContain(s.command[1]);
      for (const key of Object.keys(s.environment ?? {})) expect(APP_ENV, `${name}: ${key}`).toContain(key);
      // The demo's peers need no Redis.
      if (s.command?.[0] !== 'demo-peers') expect(s.environment?.REDIS_URL, name).toBe('redis://redis:6379');
      // The image's healthcheck probes /livez on QUEUELENS_PORT (9487): the sidecar serves it, a worker on its
      // health port when that is the same port; everything else must disable the healthcheck.
      const servesLivez =
        s.command?.[0] === 'sidecar' || (s.command?.[0] === 'worker' && s.environment?.QUEUELENS_HEALTH_PORT === (s.environment?.QUEUELENS_PORT ?? '9487'));
      if (!servesLivez) expect(s.healthcheck?.disable, `${name} must disable the /livez healthcheck`).toBe(true);
    }
  });

  test('URLs in the app environment point at compose services', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [key, value] of Object.entries(s.environment ?? {})) {
        if (!/_URL$|_ENDPOINT$|_TARGET$/.test(key)) continue;
        expect(services, `${name}: ${key}=${value}`).toHaveProperty(new URL(value).hostname);
      }
    }
  });

  test('the Dockerfile is multi-stage, runs as non-root and checks /livez', () => {
    const dockerfile = read('Dockerfile');
    expect(dockerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/^USER (?!root)\S+/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n?.*\/livez/m);
  });
});

describe('prometheus.yml', () => {
  const prom = parse(read('prometheus.yml')) as {
    rule_files: string[];
    alerting: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
    scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
  };

  test('promtool check config accepts it (rule files resolved relative to the config)', () => {
    const promtool = requireBinary('promtool');
    const r = run(promtool, ['check', 'config', 'prometheus.yml'], root);
    expect(r.status, r.output).toBe(0);
    expect(r.output).toContain('alerts/queuelens.rules.yml');
  });

  test('scrapes both sidecar replicas on their compose names and port, under the job the alerts select', () => {
    const job = prom.scrape_configs.find((c) => c.job_name === settings.exporterJob);
    const targets = job?.static_configs.flatMap((c) => c.targets) ?? [];
    const sidecars = Object.entries(services).filter(([, s]) => s.command?.[0] === 'sidecar');
    expect(targets.sort()).toEqual(sidecars.map(([n, s]) => `${n}:${s.environment?.QUEUELENS_PORT}`).sort());
  });

  test('every scrape and alertmanager target is a compose service (or Prometheus itself)', () => {
    const targets = [
      ...prom.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets)),
      ...prom.alerting.alertmanagers.flatMap((a) => a.static_configs.flatMap((s) => s.targets)),
    ];
    for (const t of targets) {
      const host = t.split(':')[0]!;
      if (host !== 'localhost') expect(services, t).toHaveProperty(host);
    }
  });

  test('the compose stack mounts the config and the rule files where the config expects them', () => {
    const mounts = services.prometheus?.volumes ?? [];
    expect(mounts).toContain('./prometheus.yml:/etc/prometheus/prometheus.yml:ro');
    expect(mounts).toContain('./alerts:/etc/prometheus/alerts:ro');
    expect(prom.rule_files).toEqual(['alerts/*.rules.yml']);
  });
});

describe('alertmanager and grafana', () => {
  test('amtool accepts the example Alertmanager config, whose receivers are compose services', () => {
    const amtool = requireBinary('amtool');
    const r = run(amtool, ['check-config', 'deploy/alertmanager/alertmanager.yml'], root);
    expect(r.status, r.output).toBe(0);
    const am = parse(read('deploy/alertmanager/alertmanager.yml')) as { receivers: Array<{ webhook_configs?: Array<{ url: string }> }> };
    const urls = am.receivers.flatMap((r2) => (r2.webhook_configs ?? []).map((w) => w.url));
    expect(urls.length).toBeGreaterThan(0);
    for (const u of urls) expect(services).toHaveProperty(new URL(u).hostname);
  });

  test('Grafana provisioning points at the Prometheus service and at the mounted dashboards', () => {
    const ds = parse(read('deploy/grafana/provisioning/datasources/queuelens.yml')) as { datasources: Array<{ type: string; url: string }> };
    expect(ds.datasources[0]?.type).toBe('prometheus');
    expect(services).toHaveProperty(new URL(ds.datasources[0]!.url).hostname);
    const dash = parse(read('deploy/grafana/provisioning/dashboards/queuelens.yml')) as { providers: Array<{ options: { path: string } }> };
    const path = dash.providers[0]!.options.path;
    expect(services.grafana?.volumes).toContain(`./dashboards:${path}:ro`);
  });
});

describe('docs', () => {
  test('every service docs/monitoring.md lists is in the compose file, and every compose service is listed', () => {
    const doc = read('docs/monitoring.md');
    const section = doc.slice(doc.indexOf('### The compose stack'));
    const table = section.slice(0, section.indexOf('\n\n', section.indexOf('|')));
    const named = [...table.matchAll(/^\| `([a-z0-9-]+)`/gm)].map((m) => m[1]);
    expect(named.length).toBeGreaterThan(0);
    expect(named.sort()).toEqual(Object.keys(services).sort());
  });
});
