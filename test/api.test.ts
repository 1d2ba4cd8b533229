// The original REST API, served as a facade over PodMigrations (--api-bind-address): a
// whole migration driven over HTTP while kubectl watches it, each caller acting with its
// own ServiceAccount's rights, and bad input refused without creating anything.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PodMigration } from '../src/api/types';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { KubeClient, paths } from '../src/kube/client';
import { KubeConfig } from '../src/kube/config';
import { CLUSTER_DIR, ROOT } from './cluster/provider';
import {
  DOWNLOADER_DONE,
  OperatorProcess,
  TRAINING_CONTAINERS,
  createRunningPod,
  env,
  eventually,
  k8s,
  kubectl,
  operatorNamespace,
  pmPath,
  podManifest,
  servingCertDir,
  httpsCall,
  tokenKubeconfig,
} from './helpers';

const { ns, operator } = operatorNamespace('api', { args: ['--api-bind-address', '127.0.0.1:0'] });
let base: string;
const tokens: Record<'writer' | 'reader', string> = { writer: '', reader: '' };

async function serviceAccount(name: 'writer' | 'reader', verbs: string[]): Promise<void> {
  await k8s.create(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } });
  await k8s.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: `podmigrations-${name}` },
    rules: [{ apiGroups: ['migration.ai-storage.io'], resources: ['podmigrations'], verbs }],
  });
  await k8s.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: `podmigrations-${name}` },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `podmigrations-${name}` },
    subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
  });
  const t = await k8s.create<{ status: { token: string } }>(`/api/v1/namespaces/${ns}/serviceaccounts/${name}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds: 3600 },
  });
  tokens[name] = t.status.token;
}

beforeAll(async () => {
  await serviceAccount('writer', ['create', 'get', 'list', 'watch']);
  await serviceAccount('reader', ['get', 'list']);
  base = `http://127.0.0.1:${await operator.port('api/v1/migrations')}`;
});

async function call(method: string, path: string, o: { as?: 'writer' | 'reader'; token?: string; body?: string; type?: string } = {}) {
  const headers: Record<string, string> = {};
  const token = o.token ?? (o.as ? tokens[o.as] : undefined);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (o.body !== undefined) headers['Content-Type'] = o.type ?? 'application/json';
  const res = await fetch(base + path, { method, headers, body: o.body });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const create = (body: object, as: 'writer' | 'reader' = 'writer') => call('POST', '/api/v1/migrations', { as, body: JSON.stringify(body) });
const migrations = async () => (await k8s.get<{ items: PodMigration[] }>(pmPath(ns))).items;
const valid = { pod_name: 'trainer', pod_namespace: '', source_node: 'node-1', target_node: 'node-2', timeout: 120 };

it('answers /health without a token', async () => {
  expect(await call('GET', '/health')).toEqual({ status: 200, body: { status: 'healthy' } });
});

it('refuses callers without a token (401), with a token the API server rejects (401), or without the right (403); creates nothing', async () => {
  const body = JSON.stringify({ ...valid, pod_namespace: ns });
  expect((await call('POST', '/api/v1/migrations', { body })).status).toBe(401);
  expect((await call('POST', '/api/v1/migrations', { body, token: 'not-a-token' })).status).toBe(401);
  expect((await call('GET', `/api/v1/migrations/${ns}/anything`, { token: 'not-a-token' })).status).toBe(401);
  const forbidden = await create({ ...valid, pod_namespace: ns }, 'reader');
  expect(forbidden.status).toBe(403);
  expect(forbidden.body.error).toMatch(/system:serviceaccount:.*:reader.*cannot create resource "podmigrations"/);
  // The writer may not act in another namespace either.
  expect((await create({ ...valid, pod_namespace: 'default' })).status).toBe(403);
  // Nor read the whole cluster's totals.
  expect((await call('GET', '/api/v1/metrics', { as: 'reader' })).status).toBe(403);
  expect(await migrations()).toEqual([]);
});

it.each([
  ['malformed JSON', { body: '{"pod_name": ', type: 'application/json' }, 400, /not valid JSON/],
  ['an unknown field', { body: JSON.stringify({ ...valid, pod_namespace: 'NS', node: 'x' }) }, 400, /unknown field "node"/],
  ['a missing field', { body: JSON.stringify({ pod_namespace: 'x', source_node: 'a', target_node: 'b' }) }, 400, /pod_name is required/],
  ['the same node twice', { body: JSON.stringify({ ...valid, pod_namespace: 'x', target_node: 'node-1' }) }, 400, /must differ/],
  ['a negative timeout', { body: JSON.stringify({ ...valid, pod_namespace: 'x', timeout: -5 }) }, 400, /timeout must be/],
  [
    'the wrong content type',
    { body: 'pod_name=trainer', type: 'application/x-www-form-urlencoded' },
    415,
    /Content-Type must be application\/json/,
  ],
  ['an oversized body', { body: JSON.stringify({ ...valid, pod_namespace: 'x', pad: 'x'.repeat(70_000) }) }, 413, /at most 65536 bytes/],
])('refuses %s with a JSON error, creating nothing', async (_what, o, status, message) => {
  const r = await call('POST', '/api/v1/migrations', { as: 'writer', ...o });
  expect(r.status).toBe(status);
  expect(String(r.body.error)).toMatch(message);
  expect(await migrations()).toEqual([]);
});

it('answers 404 for an unknown id, 400 for one that is not a name, 405 for a wrong method', async () => {
  expect((await call('GET', `/api/v1/migrations/${ns}/migration-none`, { as: 'reader' })).status).toBe(404);
  expect((await call('GET', `/api/v1/migrations/${ns}/migration-none/status`, { as: 'reader' })).status).toBe(404);
  const bad = await call('GET', '/api/v1/migrations/Not_A_Name', { as: 'reader' });
  expect(bad.status).toBe(400);
  expect(bad.body.field).toBe('id');
  expect((await call('DELETE', `/api/v1/migrations/${ns}/x`, { as: 'writer' })).status).toBe(405);
  expect((await call('GET', '/api/v1/nothing', { as: 'writer' })).status).toBe(404);
});

it('drives a whole migration over HTTP, a PodMigration like any other that kubectl watches', async () => {
  await createRunningPod(podManifest(ns, 'trainer', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
  const watch = spawn(join(env.bin, 'kubectl'), ['--kubeconfig', env.kubeconfig, 'get', 'podmigrations', '-n', ns, '-w']);
  let watched = '';
  watch.stdout.on('data', (d: Buffer) => (watched += d.toString()));
  try {
    const accepted = await create({ ...valid, pod_namespace: ns, preserve_pv: false });
    expect(accepted.status).toBe(202);
    expect(accepted.body).toMatchObject({
      status: 'pending',
      pod_name: 'trainer',
      pod_namespace: ns,
      source_node: 'node-1',
      target_node: 'node-2',
      timeout: 120,
    });
    const id = String(accepted.body.migration_id);
    expect(id).toMatch(new RegExp(`^${ns}/migration-[a-z0-9]+$`));
    const name = id.split('/')[1];

    const done = await eventually('completed over HTTP', async () => {
      const r = await call('GET', `/api/v1/migrations/${id}/status`, { as: 'reader' });
      expect(r.status).toBe(200);
      return r.body.status === 'completed' || r.body.status === 'failed' ? r.body : undefined;
    });
    expect(done).toMatchObject({
      migration_id: id,
      status: 'completed',
      phase: 'Completed',
      current_step: 5,
      total_steps: 5,
      progress: '5/5',
    });
    // The whole record, in the original's vocabulary; the id also works as one segment.
    const full = await call('GET', `/api/v1/migrations/${encodeURIComponent(id)}`, { as: 'reader' });
    expect(full.status).toBe(200);
    expect(full.body).toMatchObject({
      status: 'completed',
      mode: 'Copy',
      resources: { savings: { cpu_percent: 33.3, memory_percent: 66.7, basis: 'requests' } },
    });
    expect((full.body.containers as { name: string; migrated: boolean }[]).map((c) => `${c.name}:${c.migrated}`)).toEqual([
      'trainer:true',
      'exporter:true',
      'downloader:false',
    ]);
    expect(Number(full.body.duration_seconds)).toBeGreaterThan(0);
    expect(full.body.target_pod).toMatch(/^trainer-/);
    // The record is the one source of truth: the API server holds it, kubectl saw it.
    const pm = await k8s.get<PodMigration>(paths.migration(ns, name));
    expect(pm.status!.phase).toBe('Completed');
    await eventually(
      'kubectl saw it complete',
      async () => (new RegExp(`^${name}\\s+trainer\\s+node-1\\s+node-2\\s+Completed`, 'm').test(watched) ? true : undefined),
      10_000,
    );

    // Totals from the records the caller may list.
    const metrics = await call('GET', `/api/v1/metrics?namespace=${ns}`, { as: 'reader' });
    expect(metrics).toMatchObject({
      status: 200,
      body: {
        scope: `namespace ${ns}`,
        total_migrations: 1,
        completed_migrations: 1,
        failed_migrations: 0,
        average_cpu_savings_percent: 33.3,
      },
    });
    expect(Number(metrics.body.average_duration_seconds)).toBe(pm.status!.durationSeconds);

    // docs/openapi.yaml describes exactly these answers.
    const doc = parseAllDocuments(readFileSync(join(ROOT, 'docs/openapi.yaml'), 'utf8'))[0].toJS() as {
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, { properties?: Record<string, unknown>; allOf?: { properties?: Record<string, unknown> }[] }> };
    };
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/api/v1/metrics',
      '/api/v1/migrations',
      '/api/v1/migrations/{namespace}/{name}',
      '/api/v1/migrations/{namespace}/{name}/status',
      '/health',
    ]);
    const props = (schema: string): string[] => {
      const s = doc.components.schemas[schema];
      return [
        ...Object.keys(s.properties ?? {}),
        ...(s.allOf ?? []).flatMap((p) => ('$ref' in p ? props(String(p.$ref).split('/').pop()!) : Object.keys(p.properties ?? {}))),
      ];
    };
    for (const k of Object.keys(full.body)) expect([k, props('Migration').includes(k)]).toEqual([k, true]);
    for (const k of Object.keys(done)) expect([k, props('Status').includes(k)]).toEqual([k, true]);
    for (const k of Object.keys(metrics.body)) expect([k, props('Metrics').includes(k)]).toEqual([k, true]);
  } finally {
    watch.kill();
  }
});

it('is switched on by the config/api component: TLS from a mounted Secret, a Service to every replica', () => {
  const rendered = kubectl(['kustomize', join(ROOT, 'test/fixtures/api-overlay')]);
  expect(rendered.stderr).toBe('');
  const docs = parseAllDocuments(rendered.stdout).map(
    (d) => d.toJS() as { kind: string; metadata: { name: string }; spec: Record<string, unknown> },
  );
  const deployment = docs.find((d) => d.kind === 'Deployment')!;
  const pod = (
    deployment.spec as unknown as {
      template: {
        spec: {
          containers: {
            env: { name: string; value?: string }[];
            ports: { name: string; containerPort: number }[];
            volumeMounts: { name: string; mountPath: string }[];
          }[];
          volumes: { name: string; secret?: { secretName: string } }[];
        };
      };
    }
  ).template.spec;
  const env = Object.fromEntries(pod.containers[0].env.map((e) => [e.name, e.value]));
  expect(env).toMatchObject({ API_BIND_ADDRESS: ':8444', API_CERT_DIR: '/tmp/api-serving-certs' });
  expect(pod.containers[0].volumeMounts).toEqual(
    expect.arrayContaining([{ name: 'api-cert', mountPath: '/tmp/api-serving-certs', readOnly: true }]),
  );
  // Beside the webhook's certificate (the certmanager component), not instead of it.
  expect(pod.volumes.map((v) => v.secret?.secretName).sort()).toEqual(['podmigration-api-cert', 'podmigration-webhook-server-cert']);
  const service = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'podmigration-api')!;
  expect(service.spec).toMatchObject({ ports: [{ port: 443, targetPort: 'api' }] });
  expect(pod.containers[0].ports).toEqual(expect.arrayContaining([{ name: 'api', containerPort: 8444 }]));
  const cert = docs.find((d) => d.kind === 'Certificate' && d.metadata.name === 'podmigration-api-cert')!;
  expect(cert.spec).toMatchObject({
    secretName: 'podmigration-api-cert',
    dnsNames: expect.arrayContaining(['podmigration-api.podmigration-system.svc']),
  });
});

it('serves over TLS from --api-cert-dir (reloaded when it changes), acting with the caller’s token there too', async () => {
  const { dir, ca } = await servingCertDir('api-certs');
  // Reconciling nothing (a namespace of its own): the facade is all that is asked of it.
  const tls = new OperatorProcess(`${ns}-idle`, ['--api-bind-address', '127.0.0.1:0', '--api-cert-dir', dir], `${ns}-tls`);
  tls.start();
  try {
    const port = await tls.port('api/v1/migrations');
    const get = (path: string, token?: string) => httpsCall(port, path, ca, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    expect(await get('/health')).toEqual({ status: 200, body: '{"status":"healthy"}\n' });
    expect((await get(`/api/v1/migrations/${ns}/migration-none`)).status).toBe(401);
    expect((await get(`/api/v1/migrations/${ns}/migration-none`, tokens.reader)).status).toBe(404);
    // Plain HTTP is not spoken there.
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
    // A renewed certificate (cert-manager rewrites the mounted Secret) is served without a restart.
    const renewed = await servingCertDir('api-certs');
    expect(await eventually('the renewed certificate served', async () => (await httpsCall(port, '/health', renewed.ca)).status)).toBe(200);
  } finally {
    await tls.stop();
  }
});

it('reaches the API server with a kubeconfig whose identity comes from an exec credential plugin', async () => {
  // As EKS, GKE and AKS kubeconfigs do: here the plugin hands out the writer's token, after
  // a first token that the API server refuses (revoked): the client runs it again on the 401.
  const plugin = join(CLUSTER_DIR, 'exec-plugin.sh');
  const runs = join(CLUSTER_DIR, 'exec-plugin.runs');
  rmSync(runs, { force: true });
  writeFileSync(
    plugin,
    `#!/bin/sh\n[ -f ${runs} ] && t="$TOKEN" || t=revoked\necho run >> ${runs}\nprintf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "$t"\n`,
    { mode: 0o755 },
  );
  const text = parse(tokenKubeconfig('exec-user', 'unused')) as { users: { user: object }[] };
  text.users[0].user = {
    exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, env: [{ name: 'TOKEN', value: tokens.writer }] },
  };
  const path = join(CLUSTER_DIR, 'exec.kubeconfig');
  writeFileSync(path, stringify(text));
  const client = new KubeClient(KubeConfig.fromFile(path));
  const list = await client.get<{ items: PodMigration[] }>(pmPath(ns));
  expect(Array.isArray(list.items)).toBe(true);
  // And it is the writer: no more.
  await expect(client.get(paths.pods(ns))).rejects.toMatchObject({ code: 403, message: expect.stringMatching(/serviceaccount:.*:writer/) });
  // Run twice (the refused token, then the good one), and the good one kept: its answer says no expiry.
  expect(readFileSync(runs, 'utf8').trim().split('\n')).toHaveLength(2);
});
