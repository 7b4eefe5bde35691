// deploy/k8s as installed: every overlay (one sidecar, two HA sidecars, Redis Cluster) is built with the real
// `kubectl kustomize` and its output checked as an SRE would: each object validates against the Kubernetes and
// CRD schemas (kubernetes-models, @kubernetes-models/prometheus-operator, @kubernetes-models/keda), every pod
// passes Pod Security "restricted", selectors pick the pods they mean, ports, probes and environment variables
// are the ones the processes read, the image is pinned to this release, kube-prometheus-stack's selector label
// and the link bases come from the overlay's settings, the PrometheusRule carries exactly the generated rules,
// and KEDA scales on backlog per replica with age as a floor (the queries evaluated by promtool).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Service } from 'kubernetes-models/v1';
import { afterAll, describe, expect, it, test } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { sidecarOptions } from '../src/config/sidecar-config.js';
import { workerOptions } from '../src/config/worker-config.js';
import { METRICS } from '../src/metrics/definitions.js';
import { buildRuleGroups } from '../src/monitoring/alert-rules.js';
import { settings } from '../src/thresholds/monitoring-settings.js';
import { clusterPrefixProblem } from '../src/redis/slots.js';
import { requireBinary, run } from './helpers/prometheus-binaries.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const k8s = join(root, 'deploy/k8s');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const tmp = mkdtempSync(join(tmpdir(), 'queuelens-k8s-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
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
  image: string;
  args: string[];
  ports?: Array<{ name: string; containerPort: number }>;
  env: EnvVar[];
  securityContext?: any;
  livenessProbe?: { httpGet: { path: string; port: string | number } };
  readinessProbe?: { httpGet: { path: string; port: string | number } };
}

const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
};

function kustomize(dir: string): Manifest[] {
  const kubectl = requireBinary('kubectl');
  const r = spawnSync(kubectl, ['kustomize', dir], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return parseAllDocuments(r.stdout).map((doc) => {
    expect(doc.errors).toEqual([]);
    return doc.toJS() as Manifest;
  });
}

const secret = parse(readFileSync(join(k8s, 'secret.example.yaml'), 'utf8')) as Manifest;
const ofKind = (all: Manifest[], kind: string) => all.filter((m) => m.kind === kind);
const deployment = (all: Manifest[], name: string) => ofKind(all, 'Deployment').find((d) => d.metadata.name === name)!;
const containerOf = (d: Manifest): Container => d.spec.template.spec.containers[0];
const podLabels = (d: Manifest): Record<string, string> => d.spec.template.metadata.labels;
const envOf = (c: Container, name: string): EnvVar | undefined => c.env.find((e) => e.name === name);
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
const optionDefault = (name: string) => (sidecarOptions as ReadonlyArray<{ name: string; default?: unknown }>).find((o) => o.name === name)?.default;

/** The controls of Pod Security Standards "restricted" (Kubernetes 1.30), for one pod template; [] = passes. */
function restrictedViolations(pod: any): string[] {
  const out: string[] = [];
  const psc = pod.securityContext ?? {};
  const containers: any[] = [...(pod.initContainers ?? []), ...pod.containers];
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) out.push('host namespaces');
  const allowedVolumes = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
  for (const v of pod.volumes ?? []) {
    const type = Object.keys(v).find((k) => k !== 'name');
    if (!allowedVolumes.includes(type!)) out.push(`volume type ${type}`);
  }
  if (psc.sysctls?.length) out.push('sysctls');
  if (psc.seLinuxOptions?.type && !['container_t', 'container_init_t', 'container_kvm_t'].includes(psc.seLinuxOptions.type)) out.push('SELinux type');
  if (psc.runAsUser === 0) out.push('pod runAsUser 0');
  const podSeccomp = psc.seccompProfile?.type;
  if (podSeccomp !== undefined && !['RuntimeDefault', 'Localhost'].includes(podSeccomp)) out.push(`pod seccomp ${podSeccomp}`);
  for (const c of containers) {
    const sc = c.securityContext ?? {};
    const where = `container ${c.name}`;
    if (sc.privileged) out.push(`${where}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${where}: allowPrivilegeEscalation not false`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push(`${where}: capabilities.drop lacks ALL`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') out.push(`${where}: adds ${cap}`);
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) out.push(`${where}: runAsNonRoot not true`);
    if (sc.runAsUser === 0) out.push(`${where}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? podSeccomp;
    if (!['RuntimeDefault', 'Localhost'].includes(seccomp)) out.push(`${where}: seccompProfile ${seccomp ?? 'unset'}`);
    if (sc.procMount && sc.procMount !== 'Default') out.push(`${where}: procMount`);
    if (sc.appArmorProfile?.type === 'Unconfined') out.push(`${where}: AppArmor unconfined`);
    for (const p of c.ports ?? []) if (p.hostPort) out.push(`${where}: hostPort`);
  }
  return out;
}

test('the restricted check flags what the old manifests lacked (the check can fail)', () => {
  const old = {
    securityContext: { runAsNonRoot: true, runAsUser: 1000 },
    containers: [{ name: 'sidecar', securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true } }],
  };
  expect(restrictedViolations(old)).toEqual(['container sidecar: capabilities.drop lacks ALL', 'container sidecar: seccompProfile unset']);
});

const OVERLAYS = {
  'single-sidecar': { sidecars: 1, shards: '1', prefix: 'bull', pdb: false },
  'ha-sidecars': { sidecars: 2, shards: '2', prefix: 'bull', pdb: true },
  'redis-cluster': { sidecars: 2, shards: '6', prefix: '{bull}', pdb: true },
} as const;

describe.each(Object.entries(OVERLAYS))('overlays/%s', (overlay, shape) => {
  const all = kustomize(join(k8s, 'overlays', overlay));
  const namespace = 'queuelens';

  it('validates against the Kubernetes and CRD schemas, in the overlay namespace', () => {
    for (const m of all) {
      const Model = MODELS[`${m.apiVersion}/${m.kind}`];
      expect(Model, `no schema for ${m.apiVersion} ${m.kind}`).toBeDefined();
      expect(() => new Model!(m).validate(), `${m.kind}/${m.metadata.name}`).not.toThrow();
      expect(m.metadata.namespace, `${m.kind}/${m.metadata.name}`).toBe(namespace);
    }
    expect(ofKind(all, 'ConfigMap'), 'the settings ConfigMap is local-config only').toEqual([]);
  });

  it('every pod passes Pod Security "restricted", with a read-only root filesystem', () => {
    for (const d of ofKind(all, 'Deployment')) {
      expect(restrictedViolations(d.spec.template.spec), d.metadata.name).toEqual([]);
      expect(containerOf(d).securityContext.readOnlyRootFilesystem, d.metadata.name).toBe(true);
    }
  });

  it('every image is pinned to this release', () => {
    for (const d of ofKind(all, 'Deployment')) expect(containerOf(d).image, d.metadata.name).toBe(`ghcr.io/queuelens/queuelens:${version}`);
  });

  it('every Deployment selects its own pods, and only those', () => {
    const deployments = ofKind(all, 'Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual([
      'queuelens-sidecar',
      'queuelens-worker-email',
      'queuelens-worker-export',
      'queuelens-worker-webhook',
    ]);
    for (const d of deployments) {
      expect(matches(d.spec.selector.matchLabels, podLabels(d)), d.metadata.name).toBe(true);
      for (const other of deployments.filter((o) => o !== d))
        expect(matches(d.spec.selector.matchLabels, podLabels(other)), `${d.metadata.name} selects ${other.metadata.name}`).toBe(false);
    }
  });

  it('the sidecar: its replicas and shards, its default port, /livez and /readyz, a Service and a ServiceMonitor that reach it', () => {
    const d = deployment(all, 'queuelens-sidecar');
    const c = containerOf(d);
    expect(d.spec.replicas).toBe(shape.sidecars);
    expect(envOf(c, 'QUEUELENS_EVENTS_SHARDS')?.value).toBe(shape.shards);
    expect(c.args).toEqual(['sidecar']);
    const port = c.ports!.find((p) => p.name === 'metrics')!;
    expect(String(port.containerPort)).toBe(optionDefault('port'));
    expect(c.livenessProbe!.httpGet).toEqual({ path: '/livez', port: 'metrics' });
    expect(c.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    const [svc] = ofKind(all, 'Service');
    expect(matches(svc!.spec.selector, podLabels(d))).toBe(true);
    expect(svc!.spec.ports.find((p: { name: string }) => p.name === 'metrics').targetPort).toBe('metrics');
    // The alert rules select job="<exporterJob>"; prometheus-operator names the job after the Service.
    expect(svc!.metadata.name).toBe(settings.exporterJob);
    const [sm] = ofKind(all, 'ServiceMonitor');
    expect(matches(sm!.spec.selector.matchLabels, svc!.metadata.labels)).toBe(true);
    expect(sm!.spec.endpoints.map((e: { port: string }) => e.port)).toEqual(['metrics']);
    const pdbs = ofKind(all, 'PodDisruptionBudget');
    if (shape.pdb) {
      expect(matches(pdbs[0]!.spec.selector.matchLabels, podLabels(d))).toBe(true);
      expect(pdbs[0]!.spec.minAvailable).toBeLessThan(d.spec.replicas);
    } else {
      // With one replica a PDB of minAvailable 1 would block every node drain.
      expect(pdbs).toEqual([]);
    }
  });

  it('workers: probes on the health port the process serves, a grace period longer than their shutdown timeout', () => {
    for (const q of ['email', 'webhook', 'export']) {
      const d = deployment(all, `queuelens-worker-${q}`);
      const c = containerOf(d);
      expect(c.args).toEqual(['worker', q]);
      const health = c.ports!.find((p) => p.name === 'health')!;
      expect(String(health.containerPort)).toBe(envOf(c, 'QUEUELENS_HEALTH_PORT')?.value);
      expect(c.livenessProbe!.httpGet).toEqual({ path: '/livez', port: 'health' });
      expect(c.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 'health' });
      expect(d.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(Number(envOf(c, 'QUEUELENS_SHUTDOWN_TIMEOUT')?.value));
    }
  });

  it('every environment variable is one the process reads, and every Secret key exists', () => {
    const sidecarEnv = new Set<string>(sidecarOptions.map((o) => o.env));
    const workerEnv = new Set<string>(workerOptions.map((o) => o.env));
    const secretKeys = Object.keys(secret.stringData ?? {});
    for (const d of ofKind(all, 'Deployment')) {
      const c = containerOf(d);
      const known = c.args[0] === 'sidecar' ? sidecarEnv : workerEnv;
      for (const e of c.env) {
        // OTEL_* are read by the OpenTelemetry SDK itself (src/tracing/register.ts), NODE_OPTIONS by node, GLIBC_TUNABLES by glibc.
        const byOthers = e.name.startsWith('OTEL_') || e.name === 'NODE_OPTIONS' || e.name === 'GLIBC_TUNABLES';
        if (!byOthers) expect(known.has(e.name), `${d.metadata.name}: ${e.name}`).toBe(true);
        if (e.name === 'NODE_OPTIONS') expect(e.value, `${d.metadata.name}: only V8 heap sizing`).toMatch(/^(--max-(semi|old)-space-size=\d+ ?)+$/);
        if (e.name === 'GLIBC_TUNABLES')
          expect(e.value, `${d.metadata.name}: only malloc sizing`).toMatch(/^glibc\.malloc\.[a-z_]+=\d+(:glibc\.malloc\.[a-z_]+=\d+)*$/);
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) {
          expect(ref.name).toBe(secret.metadata.name);
          expect(secretKeys, `${d.metadata.name}: ${e.name}`).toContain(ref.key);
        }
      }
      expect(envOf(c, 'REDIS_URL')?.valueFrom?.secretKeyRef, d.metadata.name).toBeDefined();
      const prefix = envOf(c, c.args[0] === 'sidecar' ? 'QUEUELENS_PREFIXES' : 'QUEUELENS_PREFIX')?.value ?? 'bull';
      expect(prefix, d.metadata.name).toBe(shape.prefix);
      if (overlay === 'redis-cluster') {
        expect(envOf(c, 'REDIS_CLUSTER_NODES')?.valueFrom?.secretKeyRef?.key, d.metadata.name).toBe('redis-cluster-nodes');
        expect(clusterPrefixProblem(prefix), d.metadata.name).toBeUndefined();
      } else {
        expect(envOf(c, 'REDIS_CLUSTER_NODES'), d.metadata.name).toBeUndefined();
      }
    }
  });

  it('ServiceMonitor and PrometheusRule carry the release label kube-prometheus-stack selects; the rule holds the generated groups', () => {
    for (const kind of ['ServiceMonitor', 'PrometheusRule']) expect(ofKind(all, kind)[0]!.metadata.labels?.release, kind).toBe('kube-prometheus-stack');
    const [rule] = ofKind(all, 'PrometheusRule');
    expect(rule!.spec.groups).toEqual(JSON.parse(JSON.stringify(buildRuleGroups(settings))));
  });

  it('KEDA scales each worker on its backlog per replica with age as a floor, and keeps replicas when the signal is missing', () => {
    const scaled = ofKind(all, 'ScaledObject');
    expect(scaled).toHaveLength(3);
    const names = Object.values(METRICS).map((m) => m.name);
    for (const so of scaled) {
      const target = deployment(all, so.spec.scaleTargetRef.name);
      expect(target, so.metadata.name).toBeDefined();
      const queue = containerOf(target).args[1];
      expect(so.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
      // cooldownPeriod only acts when scaling to zero: set with minReplicaCount >= 1 it would only mislead.
      expect(so.spec.cooldownPeriod).toBeUndefined();
      expect(so.spec.fallback).toMatchObject({ behavior: 'currentReplicas' });
      expect(so.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds).toBeGreaterThan(0);
      expect(so.spec.triggers.map((t: { name: string }) => t.name)).toEqual(['backlog', 'age-floor']);
      for (const t of so.spec.triggers) {
        expect(t.type).toBe('prometheus');
        expect(t.metadata.ignoreNullValues, `${so.metadata.name} ${t.name}: a missing signal must not read as 0`).toBe('false');
        for (const m of ['job="queuelens"', `namespace="${namespace}"`, `prefix="${shape.prefix}"`, `queue="${queue}"`]) expect(t.metadata.query).toContain(m);
        for (const metric of t.metadata.query.match(/bullmq_[a-z_]+/g)) expect(names).toContain(metric);
      }
    }
  });
});

test('base: builds and validates on its own (kubectl apply -k deploy/k8s/base, without KEDA)', () => {
  const all = kustomize(join(k8s, 'base'));
  expect(ofKind(all, 'ScaledObject')).toEqual([]);
  for (const m of all) expect(() => new MODELS[`${m.apiVersion}/${m.kind}`]!(m).validate()).not.toThrow();
});

test("an overlay's settings set the selector label and the runbook and dashboard link bases", () => {
  const dir = join(tmp, 'custom');
  const base = (p: string) => relative(dir, join(k8s, p));
  spawnSync('mkdir', ['-p', dir]);
  const settingsDoc = parse(readFileSync(join(k8s, 'overlays/ha-sidecars/settings.yaml'), 'utf8')) as { data: Record<string, string> };
  settingsDoc.data = {
    prometheusRelease: 'monitoring',
    runbookBaseUrl: 'https://wiki.example.com/queuelens/runbooks',
    grafanaUrl: 'https://grafana.example.com',
  };
  writeFileSync(join(dir, 'settings.yaml'), stringify(settingsDoc));
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    stringify({ namespace: 'shop', resources: [base('base'), 'settings.yaml'], components: [base('components/keda'), base('components/settings')] }),
  );
  const all = kustomize(dir);
  for (const kind of ['ServiceMonitor', 'PrometheusRule']) expect(ofKind(all, kind)[0]!.metadata.labels?.release, kind).toBe('monitoring');
  const alerts = ofKind(all, 'PrometheusRule')[0]!
    .spec.groups.flatMap((g: { rules: any[] }) => g.rules)
    .filter((r: { alert?: string }) => r.alert);
  expect(alerts.length).toBeGreaterThan(10);
  for (const a of alerts) {
    expect(a.annotations.runbook_url).toBe(`https://wiki.example.com/queuelens/runbooks/${a.alert}.md`);
    expect(a.annotations.dashboard_url).toMatch(/^https:\/\/grafana\.example\.com\/d\/queuelens-(queue|overview)\//);
  }
});

test('the KEDA queries compute backlog and the age floor as documented (promtool evaluates them)', () => {
  const promtool = requireBinary('promtool');
  const all = kustomize(join(k8s, 'overlays/ha-sidecars'));
  const so = ofKind(all, 'ScaledObject').find((s) => s.metadata.name === 'queuelens-worker-email')!;
  const [backlog, age] = so.spec.triggers.map((t: { metadata: { query: string; threshold: string } }) => t.metadata);
  const sel = (instance: string) => `job="queuelens", namespace="queuelens", instance="${instance}", prefix="bull", queue="email"`;
  // Two sidecar replicas export the same numbers; the other namespace's queue of the same name must not count.
  const series = (instance: string) => [
    { series: `bullmq_queue_jobs{${sel(instance)}, state="waiting"}`, values: '100x20' },
    { series: `bullmq_queue_jobs{${sel(instance)}, state="prioritized"}`, values: '20x20' },
    { series: `bullmq_queue_jobs{${sel(instance)}, state="active"}`, values: '30x20' },
    { series: `bullmq_queue_jobs{${sel(instance)}, state="delayed"}`, values: '500x20' },
    { series: `bullmq_queue_workers{${sel(instance)}}`, values: '2x20' },
    { series: `bullmq_queue_oldest_waiting_age_seconds{${sel(instance)}}`, values: '10x9 45x10' },
  ];
  const tests = {
    rule_files: [],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: [
          ...series('s1:9487'),
          ...series('s2:9487'),
          { series: 'bullmq_queue_jobs{job="queuelens", namespace="other", instance="o1", prefix="bull", queue="email", state="waiting"}', values: '9999x20' },
        ],
        promql_expr_test: [
          // ready + active = 150 -> ceil(150 / 50) = 3 replicas
          { expr: backlog.query, eval_time: '5m', exp_samples: [{ labels: '{}', value: 150 }] },
          // oldest job 10 s < 30 s: no floor
          { expr: age.query, eval_time: '5m', exp_samples: [{ labels: '{}', value: 0 }] },
          // 45 s > 30 s: workers + 1 = 3
          { expr: age.query, eval_time: '15m', exp_samples: [{ labels: '{}', value: 3 }] },
        ],
      },
      {
        // A Redis that refuses CLIENT LIST: no worker count, so the floor is 1 replica, never an error that would
        // pin the replicas through the fallback.
        interval: '1m',
        input_series: [{ series: `bullmq_queue_oldest_waiting_age_seconds{${sel('s1:9487')}}`, values: '45x10' }],
        promql_expr_test: [{ expr: age.query, eval_time: '5m', exp_samples: [{ labels: '{}', value: 1 }] }],
      },
      {
        // The sidecar is gone: both queries are empty, which KEDA (ignoreNullValues false) treats as an error
        // and answers with its fallback, the current replica count.
        interval: '1m',
        input_series: [{ series: 'up{job="queuelens"}', values: '0x10' }],
        promql_expr_test: [
          { expr: backlog.query, eval_time: '5m', exp_samples: [] },
          { expr: age.query, eval_time: '5m', exp_samples: [] },
        ],
      },
    ],
  };
  expect(Number(backlog.threshold)).toBe(50);
  expect(Number(age.threshold)).toBe(1);
  const file = join(tmp, 'keda.test.yml');
  writeFileSync(file, stringify(tests));
  const r = run(promtool, ['test', 'rules', file], tmp);
  expect(r.output).toContain('SUCCESS');
  expect(r.status, r.output).toBe(0);
});
