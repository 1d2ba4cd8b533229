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
const CRDS = [CRD, 'nodedrains.migration.ai-storage.io', 'reclaimpolicies.migration.ai-storage.io'];

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

function helm(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(join(env.bin, 'helm'), [...args, '--kubeconfig', env.kubeconfig], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const parse = (text: string): Obj[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Obj)
    .filter((o) => o?.kind);
const find = (objs: Obj[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name)!;
const container = (deployment: Obj) =>
  (deployment.spec as { template: { spec: { containers: Record<string, unknown>[] } } }).template.spec.containers[0];
const podSpec = (deployment: Obj) => (deployment.spec as { template: { spec: Record<string, unknown> } }).template.spec;

/** The release `template` renders, and the prefix of its objects' names. */
const RELEASE = 'pm';
const PREFIX = 'pm-podmigration-operator';

function template(...set: string[]): Obj[] {
  const r = helm(['template', RELEASE, CHART, '-n', 'podmigration-system', ...set.flatMap((s) => ['--set', s])]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return parse(r.stdout);
}

/**
 * An install's objects by role (kind, namespace and name without the install's prefix), each
 * with the names of the install's objects replaced by their roles wherever they appear
 * (bindings, the webhook's Service, resourceNames, a ServiceAccount's user name; not label values) and without the
 * release's instance label: what a kustomize install and a Helm release must agree on,
 * whatever their names.
 */
function byRole(objs: Obj[], prefix: string): Map<string, Obj> {
  const role = (name: string) => (name.startsWith(`${prefix}-`) ? `<${name.slice(prefix.length + 1)}>` : name);
  const names = new Set(objs.map((o) => o.metadata.name));
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      if (names.has(v)) return role(v);
      // A ServiceAccount's user name inside an expression (the eviction webhook's matchCondition).
      return v.replace(/(system:serviceaccount:[a-z0-9-]+:)([a-z0-9-]+)/g, (all, head: string, sa: string) =>
        names.has(sa) ? head + role(sa) : all,
      );
    }
    if (Array.isArray(v)) return v.map(walk);
    // Label values (keys such as app.kubernetes.io/name) are not names.
    if (v && typeof v === 'object')
      return Object.fromEntries(
        Object.entries(v)
          .filter(([k]) => k !== 'app.kubernetes.io/instance')
          .map(([k, x]) => [k, k.includes('/') ? x : walk(x)]),
      );
    return v;
  };
  return new Map(objs.map((o) => [`${o.kind}/${o.metadata.namespace ?? ''}/${role(o.metadata.name)}`, walk(o) as Obj]));
}

it('lints clean', () => {
  const r = helm(['lint', CHART, '--strict']);
  expect(r.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  expect(r.code).toBe(0);
});

it('names everything after the release, and nothing as the kustomize install does', () => {
  const kustomized = new Set(parse(kubectl(['kustomize', join(ROOT, 'config/default')]).stdout).map((o) => `${o.kind}/${o.metadata.name}`));
  for (const o of template().filter((o) => o.kind !== 'CustomResourceDefinition')) {
    expect(o.metadata.name.startsWith(`${PREFIX}-`)).toBe(true);
    expect(kustomized.has(`${o.kind}/${o.metadata.name}`)).toBe(false);
  }
  // The release's name alone when it holds the chart's; fullnameOverride outright.
  expect(find(template(), 'ClusterRole', `${PREFIX}-manager`)).toBeDefined();
  const own = parse(helm(['template', 'podmigration-operator', CHART]).stdout);
  expect(find(own, 'ClusterRole', 'podmigration-operator-manager')).toBeDefined();
  expect(find(template('fullnameOverride=team'), 'ClusterRole', 'team-manager')).toBeDefined();
  // Long release names are cut so that every Service name stays a DNS label.
  const long = parse(helm(['template', 'a'.repeat(50), CHART]).stdout);
  for (const svc of long.filter((o) => o.kind === 'Service')) expect(svc.metadata.name.length).toBeLessThanOrEqual(63);
});

it('renders what config/default renders, object by object', () => {
  const chart = byRole(template(), PREFIX);
  const kustomized = byRole(
    parse(kubectl(['kustomize', join(ROOT, 'config/default')]).stdout).filter((o) => o.kind !== 'Namespace'),
    'podmigration',
  );
  expect([...chart.keys()].sort()).toEqual([...kustomized.keys()].sort());
  // The same permissions, bindings, webhook, budget, services and CRD: all but the metadata.
  for (const [id, k] of kustomized) {
    if (k.kind === 'Deployment') continue;
    const { metadata: _c, ...c } = chart.get(id)!;
    const { metadata: _k, ...rest } = k;
    expect([id, c]).toEqual([id, rest]);
  }
  const [c, k] = [
    chart.get('Deployment/podmigration-system/<controller-manager>')!,
    kustomized.get('Deployment/podmigration-system/<controller-manager>')!,
  ];
  for (const field of ['securityContext', 'ports', 'livenessProbe', 'readinessProbe', 'resources', 'env'])
    expect([field, container(c)[field]]).toEqual([field, container(k)[field]]);
  for (const field of ['securityContext', 'topologySpreadConstraints', 'serviceAccountName'])
    expect([field, podSpec(c)[field]]).toEqual([field, podSpec(k)[field]]);
  expect((c.spec as { replicas: number }).replicas).toBe((k.spec as { replicas: number }).replicas);
  // The chart names its objects to the operator outright (they follow the release).
  const chartOnly =
    /^--(leader-election-id|webhook-secret-name|webhook-config-name|eviction-webhook-config-name|webhook-service-name|log-format)=/;
  expect((container(c).args as string[]).filter((a) => !chartOnly.test(a)).sort()).toEqual([...(container(k).args as string[])].sort());
  // Copies of files elsewhere in the repository, kept identical.
  expect(readFileSync(join(CHART, 'files/crd.yaml'), 'utf8')).toBe(
    readFileSync(join(ROOT, 'crds/migration.ai-storage.io_podmigrations.yaml'), 'utf8'),
  );
  expect(readFileSync(join(CHART, 'files/nodedrain-crd.yaml'), 'utf8')).toBe(
    readFileSync(join(ROOT, 'crds/migration.ai-storage.io_nodedrains.yaml'), 'utf8'),
  );
  expect(readFileSync(join(CHART, 'files/alerts.yaml'), 'utf8')).toBe(readFileSync(join(ROOT, 'config/prometheus/alerts.yaml'), 'utf8'));
  expect(readFileSync(join(CHART, 'files/dashboard.json'), 'utf8')).toBe(
    readFileSync(join(ROOT, 'config/prometheus/dashboard.json'), 'utf8'),
  );
  expect(readFileSync(join(CHART, 'files/reclaimpolicy-crd.yaml'), 'utf8')).toBe(
    readFileSync(join(ROOT, 'crds/migration.ai-storage.io_reclaimpolicies.yaml'), 'utf8'),
  );
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
    'metrics.dashboard.enabled=true',
    'crds.keep=false',
    'fullnameOverride=team',
    'maxMigrationsInFlight=50',
  );
  const d = find(objs, 'Deployment', 'team-controller-manager');
  expect((d.spec as { replicas: number }).replicas).toBe(3);
  expect(container(d).image).toBe('registry.example.com/pm:v9');
  expect(container(d).args).toEqual(
    expect.arrayContaining([
      '--namespace=ml',
      '--log-format=text',
      '--max-migrations-in-flight=50',
      '--webhook-config-name=team-mutating-webhook',
    ]),
  );
  expect(container(d).args).not.toContain('--leader-elect');
  expect(podSpec(d).priorityClassName).toBe('system-cluster-critical');
  expect(objs.some((o) => o.kind === 'PodDisruptionBudget' || (o.kind === 'Role' && o.metadata.name === 'team-leader-election'))).toBe(
    false,
  );
  const monitor = find(objs, 'ServiceMonitor', 'team-controller-manager');
  const service = find(objs, 'Service', 'team-controller-manager-metrics');
  expect(service.metadata.labels).toMatchObject(
    (monitor.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels,
  );
  // It scrapes as config/prometheus does: HTTPS, Prometheus's own token.
  const kustomizeMonitor = parse(readFileSync(join(ROOT, 'config/prometheus/monitor.yaml'), 'utf8'))[0];
  expect((monitor.spec as { endpoints: unknown }).endpoints).toEqual((kustomizeMonitor.spec as { endpoints: unknown }).endpoints);
  expect(JSON.stringify(find(objs, 'PrometheusRule', 'team-operator').spec)).toContain('PodMigrationsStuck');
  const dashboard = find(objs, 'ConfigMap', 'team-dashboard');
  expect(dashboard.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
  expect(JSON.parse((dashboard as unknown as { data: Record<string, string> }).data['dashboard.json'])).toEqual(
    JSON.parse(readFileSync(join(ROOT, 'config/prometheus/dashboard.json'), 'utf8')),
  );
  expect(find(objs, 'CustomResourceDefinition', CRD).metadata.annotations?.['helm.sh/resource-policy']).toBeUndefined();
  // The REST facade: off by default; on, it needs a TLS Secret and gets a Service.
  expect(template().some((o) => o.metadata.name === `${PREFIX}-api`)).toBe(false);
  const refused = helm(['template', 'podmigration', CHART, '--set', 'api.enabled=true']);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/api.tlsSecretName is required/);
  const api = template('api.enabled=true', 'api.tlsSecretName=api-tls');
  const withApi = find(api, 'Deployment', `${PREFIX}-controller-manager`);
  expect(container(withApi).env).toEqual(
    expect.arrayContaining([
      { name: 'API_BIND_ADDRESS', value: ':8444' },
      { name: 'API_CERT_DIR', value: '/tmp/api-serving-certs' },
    ]),
  );
  expect(podSpec(withApi).volumes).toEqual([{ name: 'api-cert', secret: { secretName: 'api-tls' } }]);
  expect(find(api, 'Service', `${PREFIX}-api`).spec).toMatchObject({ ports: [{ port: 443, targetPort: 'api' }] });
  expect(find(template(), 'CustomResourceDefinition', CRD).metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
  // Metrics with a certificate of one's own (cert-manager's): mounted, and checked by the ServiceMonitor.
  const certified = template(
    'metrics.tlsSecretName=metrics-tls',
    'metrics.serviceMonitor.enabled=true',
    'api.enabled=true',
    'api.tlsSecretName=api-tls',
  );
  const withCert = find(certified, 'Deployment', `${PREFIX}-controller-manager`);
  expect(container(withCert).args).toContain('--metrics-cert-dir=/tmp/metrics-serving-certs');
  expect(container(withCert).volumeMounts).toEqual(
    expect.arrayContaining([{ name: 'metrics-cert', mountPath: '/tmp/metrics-serving-certs', readOnly: true }]),
  );
  expect(podSpec(withCert).volumes).toEqual([
    { name: 'api-cert', secret: { secretName: 'api-tls' } },
    { name: 'metrics-cert', secret: { secretName: 'metrics-tls' } },
  ]);
  expect(
    (find(certified, 'ServiceMonitor', `${PREFIX}-controller-manager`).spec as { endpoints: { tlsConfig: unknown }[] }).endpoints[0]
      .tlsConfig,
  ).toEqual({
    ca: { secret: { name: 'metrics-tls', key: 'ca.crt' } },
    serverName: `${PREFIX}-controller-manager-metrics.podmigration-system.svc`,
  });
});

it('installs, upgrades and uninstalls on the real API server, and keeps the CRD', () => {
  const suffix = randomBytes(3).toString('hex');
  const ns = `helm-${suffix}`;
  const release = `pm-${suffix}`;
  const prefix = `hpm${suffix}`;
  // The CRD is already installed here (by the test setup): let this release adopt it, as
  // one would adopt a CRD installed by kubectl before moving to the chart.
  for (const crd of CRDS) {
    for (const [flag, value] of [
      ['--overwrite', 'meta.helm.sh/release-name=' + release],
      ['--overwrite', 'meta.helm.sh/release-namespace=' + ns],
    ]) {
      expect(kubectl(['annotate', 'crd', crd, flag, value]).code).toBe(0);
    }
    expect(kubectl(['label', 'crd', crd, '--overwrite', 'app.kubernetes.io/managed-by=Helm']).code).toBe(0);
  }
  // No webhook: its Service has no real endpoint here, and the other tests create pods.
  const common = ['-n', ns, '--set', `fullnameOverride=${prefix}`, '--set', 'webhook.enabled=false', '--set', 'image.tag=test'];
  try {
    const installed = helm(['install', release, CHART, '--create-namespace', ...common]);
    expect(installed.stderr).toBe('');
    expect(installed.stdout).toMatch(/STATUS: deployed/);
    const deployment = () =>
      JSON.parse(kubectl(['get', 'deployment', `${prefix}-controller-manager`, '-n', ns, '-o', 'json']).stdout) as Obj;
    expect(container(deployment()).args).toEqual(
      expect.arrayContaining(['--leader-elect', `--leader-election-id=${prefix}-operator`, '--log-format=json']),
    );
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
    for (const crd of CRDS) expect(kubectl(['get', 'crd', crd]).code).toBe(0);
  } finally {
    helm(['uninstall', release, '-n', ns]);
    kubectl(['delete', 'namespace', ns, '--wait=false']);
  }
});

it('installs beside the kustomize install (crds.install=false), and two releases in two namespaces side by side', () => {
  // This control plane holds config/rbac (podmigration-manager, podmigration-operator in
  // podmigration-system, ...) and the CRD, as a kustomize install leaves them.
  const suffix = randomBytes(3).toString('hex');
  const releases = [
    { name: `pm-a-${suffix}`, ns: 'podmigration-system' },
    { name: `pm-b-${suffix}`, ns: `helm-b-${suffix}` },
  ].map((r) => ({ ...r, prefix: `${r.name}-podmigration-operator` }));
  const kustomizeRole = () =>
    JSON.parse(kubectl(['get', 'clusterrole', 'podmigration-manager', '-o', 'json']).stdout) as {
      metadata: { resourceVersion: string; annotations?: Record<string, string> };
    };
  const before = kustomizeRole();
  try {
    for (const r of releases) {
      // One replica, webhook on: its configuration, Service and Secret names must not collide either.
      const installed = helm([
        'install',
        r.name,
        CHART,
        '-n',
        r.ns,
        '--create-namespace',
        '--set',
        'crds.install=false',
        '--set',
        'replicaCount=1',
        '--set',
        'image.tag=test',
      ]);
      expect([r.name, installed.stderr]).toEqual([r.name, '']);
      expect(installed.stdout).toMatch(/STATUS: deployed/);
      expect(installed.stdout).toContain(`ClusterRole ${r.prefix}-metrics-reader`);
      expect(helm(['get', 'manifest', r.name, '-n', r.ns]).stdout).not.toMatch(/^kind: CustomResourceDefinition$/m);
    }
    for (const [r, other] of [releases, [...releases].reverse()]) {
      const args = container(
        JSON.parse(kubectl(['get', 'deployment', `${r.prefix}-controller-manager`, '-n', r.ns, '-o', 'json']).stdout) as Obj,
      ).args;
      expect(args).toEqual(
        expect.arrayContaining([
          `--leader-election-id=${r.prefix}-operator`,
          `--webhook-config-name=${r.prefix}-mutating-webhook`,
          `--webhook-service-name=${r.prefix}-webhook-service`,
          `--webhook-secret-name=${r.prefix}-webhook-cert`,
          `--eviction-webhook-config-name=${r.prefix}-eviction-webhook`,
        ]),
      );
      const eviction = JSON.parse(kubectl(['get', 'validatingwebhookconfiguration', `${r.prefix}-eviction-webhook`, '-o', 'json']).stdout)
        .webhooks[0];
      expect(eviction.clientConfig.service).toMatchObject({ name: `${r.prefix}-webhook-service`, namespace: r.ns });
      expect(eviction.matchConditions[0].expression).toContain(`system:serviceaccount:${r.ns}:${r.prefix}-operator`);
      const webhook = JSON.parse(kubectl(['get', 'mutatingwebhookconfiguration', `${r.prefix}-mutating-webhook`, '-o', 'json']).stdout)
        .webhooks[0];
      expect(webhook.clientConfig.service).toMatchObject({ name: `${r.prefix}-webhook-service`, namespace: r.ns });
      // Each release's identity has the operator's rights, on its own objects and not on the others'.
      const can = (...what: string[]) =>
        kubectl(['auth', 'can-i', ...what, '--as', `system:serviceaccount:${r.ns}:${r.prefix}-operator`]).stdout.trim();
      expect(can('create', 'pods/eviction', '-n', 'default')).toBe('yes');
      expect(can('create', 'tokenreviews.authentication.k8s.io')).toBe('yes');
      expect(can('update', 'leases', '-n', r.ns)).toBe('yes');
      expect(can('update', `mutatingwebhookconfiguration/${r.prefix}-mutating-webhook`)).toBe('yes');
      expect(can('get', `secret/${r.prefix}-webhook-cert`, '-n', r.ns)).toBe('yes');
      expect(can('update', `mutatingwebhookconfiguration/${other.prefix}-mutating-webhook`)).toBe('no');
      expect(can('update', 'mutatingwebhookconfiguration/podmigration-mutating-webhook')).toBe('no');
      expect(can('update', `validatingwebhookconfiguration/${r.prefix}-eviction-webhook`)).toBe('yes');
      expect(can('update', `validatingwebhookconfiguration/${other.prefix}-eviction-webhook`)).toBe('no');
      // Its Services select its own pods only.
      const selector = JSON.parse(kubectl(['get', 'service', `${r.prefix}-webhook-service`, '-n', r.ns, '-o', 'json']).stdout).spec
        .selector;
      expect(selector).toMatchObject({ 'app.kubernetes.io/instance': r.name });
    }
    // The kustomize install is untouched, and not taken over by either release.
    const after = kustomizeRole();
    expect(after.metadata).toMatchObject({ resourceVersion: before.metadata.resourceVersion });
    expect(after.metadata.annotations?.['meta.helm.sh/release-name']).toBeUndefined();
  } finally {
    for (const r of releases) helm(['uninstall', r.name, '-n', r.ns, '--wait']);
    kubectl(['delete', 'namespace', releases[1].ns, '--wait=false']);
  }
  // Uninstalling the releases leaves the kustomize install's objects.
  expect(kubectl(['get', 'clusterrole', 'podmigration-manager']).code).toBe(0);
  expect(kubectl(['get', 'serviceaccount', 'podmigration-operator', '-n', 'podmigration-system']).code).toBe(0);
  expect(kubectl(['get', 'crd', CRD]).code).toBe(0);
  for (const r of releases) expect(kubectl(['get', 'clusterrole', `${r.prefix}-manager`]).code).not.toBe(0);
});
