// deploy/k8s/ holds together and matches the code: every file parses, selectors pick the pods they mean,
// ports, probe paths and environment variables are the ones the sidecar and workers read, Secrets referenced
// exist in the example, the PrometheusRule carries exactly the generated groups, KEDA scales real Deployments
// on a real metric.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { sidecarOptions } from '../src/config/sidecar-config.js';
import { workerOptions } from '../src/config/worker-config.js';
import { METRICS } from '../src/metrics/definitions.js';
import { buildRuleGroups } from '../src/monitoring/alert-rules.js';
import { settings } from '../src/monitoring/settings.js';

const dir = fileURLToPath(new URL('../deploy/k8s/', import.meta.url));

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec: any;
  stringData?: Record<string, string>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
interface Container {
  name: string;
  args: string[];
  ports?: Array<{ name: string; containerPort: number }>;
  env: EnvVar[];
  livenessProbe?: { httpGet: { path: string; port: string | number } };
  readinessProbe?: { httpGet: { path: string; port: string | number } };
}

const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
const all: Array<Manifest & { file: string }> = files.flatMap((file) =>
  parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return { ...(doc.toJS() as Manifest), file };
  }),
);
const ofKind = (kind: string) => all.filter((m) => m.kind === kind);
const deployment = (name: string) => ofKind('Deployment').find((d) => d.metadata.name === name)!;
const containerOf = (d: Manifest): Container => d.spec.template.spec.containers[0];
const podLabels = (d: Manifest): Record<string, string> => d.spec.template.metadata.labels;
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
const optionDefault = (name: string) => sidecarOptions.find((o) => o.name === name)?.default;

describe('deploy/k8s', () => {
  it('every file parses, and the kustomization lists files that exist', () => {
    expect(all.length).toBeGreaterThanOrEqual(10);
    const kustomization = parseAllDocuments(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as { resources: string[] };
    for (const r of kustomization.resources) expect(files).toContain(r);
  });

  it('every Deployment selects its own pods, and only those', () => {
    const deployments = ofKind('Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['queuelens-sidecar', 'queuelens-worker-email', 'queuelens-worker-export', 'queuelens-worker-webhook']);
    for (const d of deployments) {
      expect(matches(d.spec.selector.matchLabels, podLabels(d)), d.metadata.name).toBe(true);
      for (const other of deployments.filter((o) => o !== d)) expect(matches(d.spec.selector.matchLabels, podLabels(other)), `${d.metadata.name} selects ${other.metadata.name}`).toBe(false);
    }
  });

  it('the sidecar: two replicas, its default port, /livez and /readyz on it, a PDB, a Service and a ServiceMonitor that reach it', () => {
    const d = deployment('queuelens-sidecar');
    const c = containerOf(d);
    expect(d.spec.replicas).toBe(2);
    expect(c.args).toEqual(['sidecar']);
    const port = c.ports!.find((p) => p.name === 'metrics')!;
    expect(String(port.containerPort)).toBe(optionDefault('port'));
    expect(c.livenessProbe!.httpGet).toEqual({ path: '/livez', port: 'metrics' });
    expect(c.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 'metrics' });

    const [svc] = ofKind('Service');
    expect(matches(svc!.spec.selector, podLabels(d))).toBe(true);
    const svcPort = svc!.spec.ports.find((p: { name: string }) => p.name === 'metrics');
    expect(svcPort.targetPort).toBe('metrics');
    // The alert rules select job="<exporterJob>"; prometheus-operator names the job after the Service.
    expect(svc!.metadata.name).toBe(settings.exporterJob);

    const [sm] = ofKind('ServiceMonitor');
    expect(matches(sm!.spec.selector.matchLabels, svc!.metadata.labels)).toBe(true);
    expect(sm!.spec.endpoints.map((e: { port: string }) => e.port)).toEqual(['metrics']);

    const [pdb] = ofKind('PodDisruptionBudget');
    expect(matches(pdb!.spec.selector.matchLabels, podLabels(d))).toBe(true);
    expect(pdb!.spec.minAvailable).toBeLessThan(d.spec.replicas);
  });

  it('every environment variable is one the process reads, and every Secret key exists', () => {
    const sidecarEnv = new Set<string>(sidecarOptions.map((o) => o.env));
    const workerEnv = new Set<string>(workerOptions.map((o) => o.env));
    const [secret] = ofKind('Secret');
    const secretKeys = Object.keys(secret!.stringData ?? {});
    for (const d of ofKind('Deployment')) {
      const c = containerOf(d);
      const known = c.args[0] === 'sidecar' ? sidecarEnv : workerEnv;
      for (const e of c.env) {
        // OTEL_* are read by the OpenTelemetry SDK itself (src/tracing/register.ts), NODE_OPTIONS by node.
        if (!e.name.startsWith('OTEL_') && e.name !== 'NODE_OPTIONS') expect(known.has(e.name), `${d.metadata.name}: ${e.name}`).toBe(true);
        if (e.name === 'NODE_OPTIONS') expect(e.value, `${d.metadata.name}: only V8 heap sizing`).toMatch(/^(--max-(semi|old)-space-size=\d+ ?)+$/);
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) {
          expect(ref.name).toBe(secret!.metadata.name);
          expect(secretKeys, `${d.metadata.name}: ${e.name}`).toContain(ref.key);
        }
      }
      expect(c.env.find((e) => e.name === 'REDIS_URL')?.valueFrom?.secretKeyRef, d.metadata.name).toBeDefined();
    }
  });

  it('workers: one Deployment per queue, a grace period longer than their shutdown timeout', () => {
    for (const q of ['email', 'webhook', 'export']) {
      const d = deployment(`queuelens-worker-${q}`);
      const c = containerOf(d);
      expect(c.args).toEqual(['worker', q]);
      const timeout = Number(c.env.find((e) => e.name === 'QUEUELENS_SHUTDOWN_TIMEOUT')?.value);
      expect(d.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(timeout);
    }
  });

  it('KEDA scales each worker Deployment on its own queue oldest waiting age', () => {
    const scaled = ofKind('ScaledObject');
    expect(scaled).toHaveLength(3);
    expect(Object.values(METRICS).map((m) => m.name)).toContain('bullmq_queue_oldest_waiting_age_seconds');
    for (const so of scaled) {
      const target = deployment(so.spec.scaleTargetRef.name);
      expect(target, so.metadata.name).toBeDefined();
      const queue = containerOf(target).args[1];
      const [trigger] = so.spec.triggers;
      expect(trigger.type).toBe('prometheus');
      expect(trigger.metadata.query).toMatch(new RegExp(`^max\\(bullmq_queue_oldest_waiting_age_seconds\\{.*queue="${queue}".*\\}\\)$`));
      expect(trigger.metadata.query).toContain(`job="${settings.exporterJob}"`);
      expect(Number(trigger.metadata.threshold)).toBeGreaterThan(0);
    }
  });

  it('the PrometheusRule holds exactly the generated rule groups', () => {
    const [rule] = ofKind('PrometheusRule');
    expect(rule!.spec.groups).toEqual(JSON.parse(JSON.stringify(buildRuleGroups(settings))));
  });
});
