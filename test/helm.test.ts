// The Helm chart (charts/podmigration-operator), with a real helm binary: it lints, renders
// what config/ renders (so the two stay in step), honours its values, and installs,
// upgrades and uninstalls on the local control plane, keeping the CRD.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './cluster/provider';
import { env, kubectl } from './helpers';

const CHART = join(ROOT, 'charts/podmigration-operator');
const CRD = 'podmigrations.migration.ai-storage.io';

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

function helm(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(join(env.bin, 'helm'), [...args, '--kubeconfig', env.kubeconfig], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const parse = (text: string): Obj[] => parseAllDocuments(text).map((d) => d.toJS() as Obj).filter((o) => o?.kind);
const find = (objs: Obj[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name)!;
const container = (deployment: Obj) => (deployment.spec as { template: { spec: { containers: Record<string, unknown>[] } } }).template.spec.containers[0];
const podSpec = (deployment: Obj) => (deployment.spec as { template: { spec: Record<string, unknown> } }).template.spec;

function template(...set: string[]): Obj[] {
  const r = helm(['template', 'podmigration', CHART, '-n', 'podmigration-system', ...set.flatMap((s) => ['--set', s])]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return parse(r.stdout);
}

it('lints clean', () => {
  const r = helm(['lint', CHART, '--strict']);
  expect(r.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  expect(r.code).toBe(0);
});

it('renders what config/default renders', () => {
  const chart = template();
  const kustomized = parse(kubectl(['kustomize', join(ROOT, 'config/default')]).stdout).filter((o) => o.kind !== 'Namespace');
  const ids = (objs: Obj[]) => objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort();
  expect(ids(chart)).toEqual(ids(kustomized));
  // The same permissions, webhook, budget, services and CRD.
  for (const [kind, name, field] of [
    ['ClusterRole', 'podmigration-manager', 'rules'],
    ['Role', 'podmigration-leader-election', 'rules'],
    ['Role', 'podmigration-webhook-cert', 'rules'],
    ['ClusterRoleBinding', 'podmigration-manager', 'subjects'],
    ['ClusterRole', 'podmigration-metrics-auth', 'rules'],
    ['ClusterRoleBinding', 'podmigration-metrics-auth', 'subjects'],
    ['ClusterRole', 'podmigration-metrics-reader', 'rules'],
    ['MutatingWebhookConfiguration', 'podmigration-mutating-webhook', 'webhooks'],
    ['PodDisruptionBudget', 'podmigration-controller-manager', 'spec'],
    ['Service', 'podmigration-webhook-service', 'spec'],
    ['Service', 'podmigration-controller-manager-metrics', 'spec'],
    ['CustomResourceDefinition', CRD, 'spec'],
  ]) {
    expect([kind, name, find(chart, kind, name)[field]]).toEqual([kind, name, find(kustomized, kind, name)[field]]);
  }
  const [c, k] = [find(chart, 'Deployment', 'podmigration-controller-manager'), find(kustomized, 'Deployment', 'podmigration-controller-manager')];
  for (const field of ['securityContext', 'ports', 'livenessProbe', 'readinessProbe', 'resources', 'env']) expect([field, container(c)[field]]).toEqual([field, container(k)[field]]);
  for (const field of ['securityContext', 'topologySpreadConstraints', 'serviceAccountName']) expect([field, podSpec(c)[field]]).toEqual([field, podSpec(k)[field]]);
  expect((c.spec as { replicas: number }).replicas).toBe((k.spec as { replicas: number }).replicas);
  // The chart names its objects to the operator outright (they follow fullnameOverride).
  const chartOnly = /^--(leader-election-id|webhook-secret-name|webhook-config-name|webhook-service-name|log-format)=/;
  expect((container(c).args as string[]).filter((a) => !chartOnly.test(a)).sort()).toEqual([...(container(k).args as string[])].sort());
  // Copies of files elsewhere in the repository, kept identical.
  expect(readFileSync(join(CHART, 'files/crd.yaml'), 'utf8')).toBe(readFileSync(join(ROOT, 'crds/migration.ai-storage.io_podmigrations.yaml'), 'utf8'));
  expect(readFileSync(join(CHART, 'files/alerts.yaml'), 'utf8')).toBe(readFileSync(join(ROOT, 'config/prometheus/alerts.yaml'), 'utf8'));
});

it('honours its values', () => {
  const objs = template(
    'image.repository=registry.example.com/pm',
    'image.tag=v9',
    'replicaCount=3',
    'leaderElection.enabled=false',
    'watchNamespace=ml',
    'logFormat=text',
    'priorityClassName=system-cluster-critical',
    'podDisruptionBudget.enabled=false',
    'metrics.serviceMonitor.enabled=true',
    'metrics.prometheusRule.enabled=true',
    'crds.keep=false',
    'fullnameOverride=team',
    'maxMigrationsInFlight=50',
  );
  const d = find(objs, 'Deployment', 'team-controller-manager');
  expect((d.spec as { replicas: number }).replicas).toBe(3);
  expect(container(d).image).toBe('registry.example.com/pm:v9');
  expect(container(d).args).toEqual(expect.arrayContaining(['--namespace=ml', '--log-format=text', '--max-migrations-in-flight=50', '--webhook-config-name=team-mutating-webhook']));
  expect(container(d).args).not.toContain('--leader-elect');
  expect(podSpec(d).priorityClassName).toBe('system-cluster-critical');
  expect(objs.some((o) => o.kind === 'PodDisruptionBudget' || (o.kind === 'Role' && o.metadata.name === 'team-leader-election'))).toBe(false);
  const monitor = find(objs, 'ServiceMonitor', 'team-controller-manager');
  const service = find(objs, 'Service', 'team-controller-manager-metrics');
  expect(service.metadata.labels).toMatchObject((monitor.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels);
  // It scrapes as config/prometheus does: HTTPS, Prometheus's own token.
  const kustomizeMonitor = parse(readFileSync(join(ROOT, 'config/prometheus/monitor.yaml'), 'utf8'))[0];
  expect((monitor.spec as { endpoints: unknown }).endpoints).toEqual((kustomizeMonitor.spec as { endpoints: unknown }).endpoints);
  expect(JSON.stringify(find(objs, 'PrometheusRule', 'team-operator').spec)).toContain('PodMigrationsStuck');
  expect(find(objs, 'CustomResourceDefinition', CRD).metadata.annotations?.['helm.sh/resource-policy']).toBeUndefined();
  // The REST facade: off by default; on, it needs a TLS Secret and gets a Service.
  expect(template().some((o) => o.metadata.name === 'podmigration-api')).toBe(false);
  const refused = helm(['template', 'podmigration', CHART, '--set', 'api.enabled=true']);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/api.tlsSecretName is required/);
  const api = template('api.enabled=true', 'api.tlsSecretName=api-tls');
  const withApi = find(api, 'Deployment', 'podmigration-controller-manager');
  expect(container(withApi).env).toEqual(expect.arrayContaining([{ name: 'API_BIND_ADDRESS', value: ':8444' }, { name: 'API_CERT_DIR', value: '/tmp/api-serving-certs' }]));
  expect(podSpec(withApi).volumes).toEqual([{ name: 'api-cert', secret: { secretName: 'api-tls' } }]);
  expect(find(api, 'Service', 'podmigration-api').spec).toMatchObject({ ports: [{ port: 443, targetPort: 'api' }] });
  expect(find(template(), 'CustomResourceDefinition', CRD).metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
  // Metrics with a certificate of one's own (cert-manager's): mounted, and checked by the ServiceMonitor.
  const certified = template('metrics.tlsSecretName=metrics-tls', 'metrics.serviceMonitor.enabled=true', 'api.enabled=true', 'api.tlsSecretName=api-tls');
  const withCert = find(certified, 'Deployment', 'podmigration-controller-manager');
  expect(container(withCert).args).toContain('--metrics-cert-dir=/tmp/metrics-serving-certs');
  expect(container(withCert).volumeMounts).toEqual(expect.arrayContaining([{ name: 'metrics-cert', mountPath: '/tmp/metrics-serving-certs', readOnly: true }]));
  expect(podSpec(withCert).volumes).toEqual([{ name: 'api-cert', secret: { secretName: 'api-tls' } }, { name: 'metrics-cert', secret: { secretName: 'metrics-tls' } }]);
  expect((find(certified, 'ServiceMonitor', 'podmigration-controller-manager').spec as { endpoints: { tlsConfig: unknown }[] }).endpoints[0].tlsConfig).toEqual({
    ca: { secret: { name: 'metrics-tls', key: 'ca.crt' } },
    serverName: 'podmigration-controller-manager-metrics.podmigration-system.svc',
  });
});

it('installs, upgrades and uninstalls on the real API server, and keeps the CRD', () => {
  const suffix = randomBytes(3).toString('hex');
  const ns = `helm-${suffix}`;
  const release = `pm-${suffix}`;
  const prefix = `hpm${suffix}`;
  // The CRD is already installed here (by the test setup): let this release adopt it, as
  // one would adopt a CRD installed by kubectl before moving to the chart.
  for (const [flag, value] of [
    ['--overwrite', 'meta.helm.sh/release-name=' + release],
    ['--overwrite', 'meta.helm.sh/release-namespace=' + ns],
  ]) {
    expect(kubectl(['annotate', 'crd', CRD, flag, value]).code).toBe(0);
  }
  expect(kubectl(['label', 'crd', CRD, '--overwrite', 'app.kubernetes.io/managed-by=Helm']).code).toBe(0);
  // No webhook: its Service has no real endpoint here, and the other tests create pods.
  const common = ['-n', ns, '--set', `fullnameOverride=${prefix}`, '--set', 'webhook.enabled=false', '--set', 'image.tag=test'];
  try {
    const installed = helm(['install', release, CHART, '--create-namespace', ...common]);
    expect(installed.stderr).toBe('');
    expect(installed.stdout).toMatch(/STATUS: deployed/);
    const deployment = () => JSON.parse(kubectl(['get', 'deployment', `${prefix}-controller-manager`, '-n', ns, '-o', 'json']).stdout) as Obj;
    expect(container(deployment()).args).toEqual(expect.arrayContaining(['--leader-elect', `--leader-election-id=${prefix}-operator`, '--log-format=json']));
    // Its identity has the operator's rights.
    const as = ['--as', `system:serviceaccount:${ns}:${prefix}-operator`];
    expect(kubectl(['auth', 'can-i', 'create', 'pods/eviction', '-n', 'default', ...as]).stdout.trim()).toBe('yes');
    expect(kubectl(['auth', 'can-i', 'update', 'leases', '-n', ns, ...as]).stdout.trim()).toBe('yes');
    expect(kubectl(['auth', 'can-i', 'delete', 'nodes', ...as]).stdout.trim()).toBe('no');

    const upgraded = helm(['upgrade', release, CHART, ...common, '--reuse-values', '--set', 'logFormat=text', '--set', 'replicaCount=1']);
    expect(upgraded.stderr).toBe('');
    expect(upgraded.stdout).toMatch(/has been upgraded/);
    expect(container(deployment()).args).toContain('--log-format=text');
    expect((deployment().spec as { replicas: number }).replicas).toBe(1);

    const uninstalled = helm(['uninstall', release, '-n', ns, '--wait']);
    expect(uninstalled.code).toBe(0);
    expect(uninstalled.stdout).toMatch(/kept due to the resource policy/);
    expect(kubectl(['get', 'deployment', `${prefix}-controller-manager`, '-n', ns]).code).not.toBe(0);
    expect(kubectl(['get', 'clusterrole', `${prefix}-manager`]).code).not.toBe(0);
    expect(kubectl(['get', 'crd', CRD]).code).toBe(0);
  } finally {
    helm(['uninstall', release, '-n', ns]);
    kubectl(['delete', 'namespace', ns, '--wait=false']);
  }
});
