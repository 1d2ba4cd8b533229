// The manifests install the way users install them: kubectl apply -k config/default.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cluster/provider';
import { kubectl } from './helpers';

afterAll(() => {
  kubectl(['delete', 'deployment', 'podmigration-controller-manager', '-n', 'podmigration-system', '--ignore-not-found']);
  // Its Service has no endpoints here (the Deployment's pod does not run): remove it, although
  // with failurePolicy Ignore it would only cost the other tests' owned pods a timeout.
  kubectl(['delete', 'mutatingwebhookconfiguration', 'podmigration-mutating-webhook', '--ignore-not-found']);
  kubectl(['delete', 'validatingwebhookconfiguration', 'podmigration-eviction-webhook', '--ignore-not-found']);
});

/** Renders a kustomize overlay of the repository's config (`body` after the header), as a user's would be. */
function overlay(name: string, body: string) {
  const dir = join(ROOT, '.cluster-test', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'kustomization.yaml'), `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n${body}`);
  return kubectl(['kustomize', dir]);
}

it('applies config/default on the real API server', () => {
  const r = kubectl(['apply', '--server-side', '--force-conflicts', '-k', 'config/default']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  for (const line of [
    'namespace/podmigration-system',
    'customresourcedefinition.apiextensions.k8s.io/podmigrations.migration.ai-storage.io',
    'serviceaccount/podmigration-operator',
    'clusterrole.rbac.authorization.k8s.io/podmigration-manager',
    'clusterrolebinding.rbac.authorization.k8s.io/podmigration-manager',
    'clusterrole.rbac.authorization.k8s.io/podmigration-metrics-auth',
    'clusterrolebinding.rbac.authorization.k8s.io/podmigration-metrics-auth',
    'clusterrole.rbac.authorization.k8s.io/podmigration-metrics-reader',
    'deployment.apps/podmigration-controller-manager',
    'service/podmigration-controller-manager-metrics',
    'service/podmigration-webhook-service',
    'mutatingwebhookconfiguration.admissionregistration.k8s.io/podmigration-mutating-webhook',
    'validatingwebhookconfiguration.admissionregistration.k8s.io/podmigration-eviction-webhook',
  ]) {
    expect(r.stdout).toContain(line);
  }
  const d = JSON.parse(kubectl(['get', 'deployment', 'podmigration-controller-manager', '-n', 'podmigration-system', '-o', 'json']).stdout);
  const pod = d.spec.template.spec;
  expect(pod.serviceAccountName).toBe('podmigration-operator');
  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  expect(pod.containers[0].securityContext).toMatchObject({
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  });
  // Metrics over HTTPS on :8443 (beyond loopback the operator serves them no other way).
  expect(pod.containers[0].args).toContain('--metrics-bind-address=:8443');
  expect(pod.containers[0].ports).toEqual(expect.arrayContaining([{ name: 'metrics', containerPort: 8443, protocol: 'TCP' }]));
  const service = JSON.parse(
    kubectl(['get', 'service', 'podmigration-controller-manager-metrics', '-n', 'podmigration-system', '-o', 'json']).stdout,
  );
  expect(service.spec.ports).toEqual([expect.objectContaining({ name: 'https', port: 8443, targetPort: 'metrics' })]);
});

it('applies the one-file bundle of make build-installer, with the image IMG names', () => {
  const img = 'registry.example.com/podmigration-operator:v9.9.9';
  const built = spawnSync('make', ['-s', 'build-installer', `IMG=${img}`], { cwd: ROOT, encoding: 'utf8' });
  expect(built.status).toBe(0);
  const bundle = readFileSync(join(ROOT, 'dist/install.yaml'), 'utf8');
  expect(bundle.match(/^kind: /gm)?.length).toBeGreaterThanOrEqual(12);
  const r = kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(ROOT, 'dist/install.yaml')]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const d = JSON.parse(kubectl(['get', 'deployment', 'podmigration-controller-manager', '-n', 'podmigration-system', '-o', 'json']).stdout);
  expect(d.spec.template.spec.containers[0].image).toBe(img);
  expect(kubectl(['get', 'poddisruptionbudget,service', '-n', 'podmigration-system', '-o', 'name']).stdout.split('\n')).toEqual(
    expect.arrayContaining([
      'poddisruptionbudget.policy/podmigration-controller-manager',
      'service/podmigration-controller-manager-metrics',
    ]),
  );
});

it('grants the operator no write on nodes but a cordon, no secrets but its own, and no wildcards', () => {
  const get = (...what: string[]) => JSON.parse(kubectl(['get', ...what, '-o', 'json']).stdout);
  const role = get('clusterrole', 'podmigration-manager');
  const election = get('role', 'podmigration-leader-election', '-n', 'podmigration-system');
  const metricsAuth = get('clusterrole', 'podmigration-metrics-auth');
  const metricsReader = get('clusterrole', 'podmigration-metrics-reader');
  expect(election.rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }]);
  // Secure metrics: the operator may only ask who a scraper is and what it may do; scrapers may only get /metrics.
  expect(metricsAuth.rules).toEqual([
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
    { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
  ]);
  expect(metricsReader.rules).toEqual([{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]);
  for (const rule of [...role.rules, ...election.rules, ...metricsAuth.rules, ...metricsReader.rules] as {
    apiGroups?: string[];
    resources?: string[];
    nonResourceURLs?: string[];
    verbs: string[];
  }[]) {
    expect(rule.verbs).not.toContain('*');
    expect(rule.resources ?? []).not.toContain('*');
    expect(rule.apiGroups ?? []).not.toContain('*');
    expect(rule.nonResourceURLs ?? []).not.toContain('*');
    expect(rule.resources ?? []).not.toContain('secrets');
    // Nodes: read, and patched only to cordon and uncordon the node a NodeDrain names.
    if (rule.resources?.includes('nodes')) expect(rule.verbs.every((v) => ['get', 'list', 'watch', 'patch'].includes(v))).toBe(true);
  }
  // And the identity the tests run the operator under really is that narrow.
  const as = ['--as', 'system:serviceaccount:podmigration-system:podmigration-operator'];
  expect(kubectl(['auth', 'can-i', 'delete', 'nodes', ...as]).stdout.trim()).toBe('no');
  expect(kubectl(['auth', 'can-i', 'update', 'nodes', ...as]).stdout.trim()).toBe('no');
  expect(kubectl(['auth', 'can-i', 'update', 'nodes/status', ...as]).stdout.trim()).toBe('no');
  expect(kubectl(['auth', 'can-i', 'get', 'secrets', '-A', ...as]).stdout.trim()).toBe('no');
  // A ReclaimPolicy is the user's: the operator writes only its status (the report).
  expect(kubectl(['auth', 'can-i', 'patch', 'reclaimpolicies.migration.ai-storage.io', ...as]).stdout.trim()).toBe('no');
  expect(
    kubectl(['auth', 'can-i', 'update', 'reclaimpolicies.migration.ai-storage.io', '--subresource', 'status', ...as]).stdout.trim(),
  ).toBe('yes');
  // Only its own webhook Secret and webhook configuration.
  expect(kubectl(['auth', 'can-i', 'get', 'secrets', '-n', 'podmigration-system', ...as]).stdout.trim()).toBe('no');
  expect(kubectl(['auth', 'can-i', 'get', 'secret/podmigration-webhook-cert', '-n', 'podmigration-system', ...as]).stdout.trim()).toBe(
    'yes',
  );
  expect(kubectl(['auth', 'can-i', 'update', 'mutatingwebhookconfigurations', ...as]).stdout.trim()).toBe('no');
  expect(kubectl(['auth', 'can-i', 'update', 'mutatingwebhookconfiguration/podmigration-mutating-webhook', ...as]).stdout.trim()).toBe(
    'yes',
  );
  const webhook = JSON.parse(kubectl(['get', 'mutatingwebhookconfiguration', 'podmigration-mutating-webhook', '-o', 'json']).stdout)
    .webhooks[0];
  expect(webhook).toMatchObject({ failurePolicy: 'Ignore', timeoutSeconds: 2, sideEffects: 'None' });
  // At rest the API server calls it for no pod: the operator arms it only while a migration waits on an owner.
  expect(webhook.matchConditions).toEqual([
    { name: 'armed-owners', expression: 'false' },
    { name: 'not-bound-to-a-node', expression: "!has(object.spec.nodeName) || object.spec.nodeName == ''" },
  ]);
  expect(kubectl(['auth', 'can-i', 'create', 'pods', '-n', 'default', ...as]).stdout.trim()).toBe('yes');
  expect(kubectl(['auth', 'can-i', 'create', 'tokenreviews.authentication.k8s.io', ...as]).stdout.trim()).toBe('yes');
  expect(kubectl(['auth', 'can-i', 'create', 'subjectaccessreviews.authorization.k8s.io', ...as]).stdout.trim()).toBe('yes');
  // Reading metrics is the scrapers' right, not the operator's.
  expect(kubectl(['auth', 'can-i', 'get', '/metrics', ...as]).stdout.trim()).toBe('no');
});

it('keeps its permissions under an overlay with its own namespace and name prefix', () => {
  const rendered = overlay('overlay-team', 'namespace: team-ml\nnamePrefix: ml-\nresources: [../../config/rbac]\n');
  expect(rendered.stderr).toBe('');
  try {
    expect(kubectl(['create', 'namespace', 'team-ml']).code).toBe(0);
    const applied = kubectl(['apply', '--server-side', '-f', '-'], rendered.stdout);
    expect(applied.stderr).toBe('');
    // The same rights as the base install's identity: in its own namespace (leases, its
    // webhook Secret) and cluster-wide; none left to the base install's name.
    const rights = (sa: string, ns: string) =>
      kubectl(['auth', 'can-i', '--list', '-n', ns, '--as', `system:serviceaccount:${sa}`]).stdout.replace(
        /ml-podmigration-/g,
        'podmigration-',
      );
    const overlay = rights('team-ml:ml-podmigration-operator', 'team-ml');
    expect(overlay).toMatch(/leases\.coordination\.k8s\.io/);
    expect(overlay).toMatch(/pods\/eviction/);
    expect(overlay).toBe(rights('podmigration-system:podmigration-operator', 'podmigration-system'));
    for (const d of rendered.stdout.split(/^---$/m)) {
      if (/^kind: (Cluster)?RoleBinding$/m.test(d))
        expect(d).toMatch(/- kind: ServiceAccount\n {2}name: ml-podmigration-operator\n {2}namespace: team-ml/);
    }
  } finally {
    kubectl(['delete', '-f', '-', '--ignore-not-found', '--wait=false'], rendered.stdout);
    kubectl(['delete', 'namespace', 'team-ml', '--wait=false']);
  }
});

it('renders the cert-manager option: a Certificate, its Secret mounted for --webhook-cert-dir, the CA injected', () => {
  const r = overlay('overlay-certmanager', 'resources: [../../config/default]\ncomponents: [../../config/certmanager]\n');
  expect(r.stderr).toBe('');
  const docs = r.stdout.split(/^---$/m);
  const doc = (kind: string) => docs.find((d) => new RegExp(`^kind: ${kind}$`, 'm').test(d)) ?? '';
  expect(doc('Certificate')).toMatch(/secretName: podmigration-webhook-server-cert/);
  expect(doc('Certificate')).toMatch(/podmigration-webhook-service\.podmigration-system\.svc/);
  expect(doc('Deployment')).toMatch(/--webhook-cert-dir=\/tmp\/k8s-webhook-server\/serving-certs/);
  expect(doc('Deployment')).toMatch(/secretName: podmigration-webhook-server-cert/);
  expect(doc('MutatingWebhookConfiguration')).toMatch(/cert-manager\.io\/inject-ca-from: podmigration-system\/podmigration-serving-cert/);
  expect(doc('ValidatingWebhookConfiguration')).toMatch(/cert-manager\.io\/inject-ca-from: podmigration-system\/podmigration-serving-cert/);
});

it.each([
  [['--log-level', 'loud'], /--log-level must be one of/],
  [['--max-concurrent-migrations', '0'], /--max-concurrent-migrations must be a whole number/],
  [['--max-migrations-per-node', 'two'], /--max-migrations-per-node must be a whole number/],
  [['--log-format', 'xml'], /--log-format must be json or text/],
  [['--bogus'], /Unknown option '--bogus'/],
])('exits 2 with a clear message on bad flags %j', (args, message) => {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/main.js'), ...args], { encoding: 'utf8' });
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toMatch(/Usage: podmigration-operator/);
});

it('documents every flag in --help', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/main.js'), '--help'], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  // Every flag the parser knows (src/options.ts), named in the help.
  const known = [...readFileSync(join(ROOT, 'src/options.ts'), 'utf8').matchAll(/^ {8}'?([a-z-]+)'?: \{ type: '(?:string|boolean)'/gm)].map(
    (m) => m[1],
  );
  expect(known.length).toBeGreaterThanOrEqual(20);
  for (const flag of known) expect([flag, r.stdout.includes(`--${flag}`)]).toEqual([flag, true]);
});

it("prints its version (package.json's) with --version", () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/main.js'), '--version'], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  expect(r.stdout).toBe(`podmigration-operator ${version} (Node.js ${process.version})\n`);
});
