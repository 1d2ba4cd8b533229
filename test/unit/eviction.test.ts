// The eviction webhook's decision, over an in-memory API server: which evictions become
// migrations (429, one PodMigration per pod however often it is asked), which pass, and
// that nothing it is sent makes it throw or refuse by mistake.
import pino from 'pino';
import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigration } from '../../src/api/types';
import { paths } from '../../src/kube/client';
import { evictionMigrationName, optedIn, reviewEviction } from '../../src/webhook/eviction';
import { FakeKube } from './fakeKube';

const log = pino({ level: 'silent' });
const NS = 'ml';
const OPERATOR = 'system:serviceaccount:podmigration-system:podmigration-operator';

function setup(o: { nsLabel?: string } = {}) {
  const kube = new FakeKube();
  kube.put(`/api/v1/namespaces/${NS}`, {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: NS, labels: o.nsLabel ? { 'migration.ai-storage.io/on-eviction': o.nsLabel } : {} },
  });
  const deps = {
    client: kube.client,
    env: { steering: true, steerOwnerKinds: new Set(['apps/StatefulSet', 'batch/Job']) },
    log,
    self: () => OPERATOR,
  };
  return { kube, deps };
}

function pod(
  kube: FakeKube,
  name: string,
  o: { annotation?: string; owner?: object; phase?: string; labels?: Record<string, string> } = {},
) {
  return kube.put(paths.pod(NS, name), {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: NS,
      labels: o.labels ?? { app: name },
      annotations: o.annotation ? { 'migration.ai-storage.io/on-eviction': o.annotation } : {},
      ownerReferences: o.owner ? [o.owner] : undefined,
    },
    spec: { nodeName: 'node-1', containers: [{ name: 'main', image: 'x' }] },
    status: { phase: o.phase ?? 'Running' },
  }) as V1Pod & { metadata: { uid: string } };
}

const review = (name: string, o: { user?: string; dryRun?: boolean; namespace?: unknown; bodyDryRun?: boolean } = {}) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: 'req-1',
    operation: 'CREATE',
    subResource: 'eviction',
    namespace: o.namespace ?? NS,
    name,
    userInfo: { username: o.user ?? 'kubectl-user' },
    dryRun: o.dryRun ?? false,
    object: {
      apiVersion: 'policy/v1',
      kind: 'Eviction',
      metadata: { name },
      ...(o.bodyDryRun ? { deleteOptions: { dryRun: ['All'] } } : {}),
    },
  },
});

type Response = { response: { uid: string; allowed: boolean; status?: { code: number; reason: string; message: string } } };
const answer = async (deps: Parameters<typeof reviewEviction>[0], body: unknown) => (await reviewEviction(deps, body)) as Response;
const migrations = (kube: FakeKube) => kube.list<PodMigration>(paths.migrations(NS));

it('answers an opted-in bare pod 429, naming the PodMigration it starts, and a retry starts no second one', async () => {
  const { kube, deps } = setup();
  const p = pod(kube, 'trainer', { annotation: 'migrate' });
  const first = await answer(deps, review('trainer'));
  const name = evictionMigrationName(p.metadata.uid);
  expect(first.response).toMatchObject({ uid: 'req-1', allowed: false, status: { code: 429, reason: 'TooManyRequests' } });
  expect(first.response.status!.message).toContain(`PodMigration ${NS}/${name}`);
  const [m] = migrations(kube);
  expect(m.metadata).toMatchObject({
    name,
    labels: { 'migration.ai-storage.io/created-by': 'eviction' },
    annotations: { 'migration.ai-storage.io/evicted-by': 'kubectl-user' },
  });
  expect(m.spec).toEqual({ podName: 'trainer', sourceNode: 'node-1' });
  const again = await answer(deps, review('trainer'));
  expect(again.response).toMatchObject({ allowed: false, status: { code: 429 } });
  expect(migrations(kube)).toHaveLength(1);
});

it("lets the next eviction pass once the pod's migration has ended without moving it", async () => {
  const { kube, deps } = setup();
  const p = pod(kube, 'trainer', { annotation: 'migrate' });
  await answer(deps, review('trainer'));
  kube.update(
    paths.migration(NS, evictionMigrationName(p.metadata.uid)),
    (m) => (m.status = { phase: 'Failed', reason: 'TargetPodUnschedulable' }),
  );
  expect((await answer(deps, review('trainer'))).response.allowed).toBe(true);
  expect(migrations(kube)).toHaveLength(1);
});

it('lets the eviction pass when its migration has not started within its timeout (no operator carries it out)', async () => {
  const { kube, deps } = setup();
  const p = pod(kube, 'trainer', { annotation: 'migrate' });
  await answer(deps, review('trainer'));
  const later = { ...deps, now: () => Date.now() + 601_000 };
  expect((await answer(later, review('trainer'))).response.allowed).toBe(true);
  // Started, it is the migration's own deadline that ends it.
  kube.update(
    paths.migration(NS, evictionMigrationName(p.metadata.uid)),
    (m) => (m.status = { phase: 'CreatingTargetPod', startTime: new Date().toISOString() }),
  );
  expect((await answer(later, review('trainer'))).response.allowed).toBe(false);
});

it('lets evictions in namespaces the operator does not watch pass', async () => {
  const { kube, deps } = setup();
  pod(kube, 'trainer', { annotation: 'migrate' });
  expect((await answer({ ...deps, namespace: 'elsewhere' }, review('trainer'))).response.allowed).toBe(true);
  expect(migrations(kube)).toEqual([]);
});

it("takes the namespace's label, unless the pod's own annotation says otherwise", async () => {
  const { kube, deps } = setup({ nsLabel: 'migrate' });
  pod(kube, 'a');
  pod(kube, 'b', { annotation: 'evict' });
  expect((await answer(deps, review('a'))).response.allowed).toBe(false);
  expect((await answer(deps, review('b'))).response.allowed).toBe(true);
  expect(optedIn({ metadata: {} }, undefined)).toBe(false);
});

it('hands a ReplicaSet pod to a Surge migration', async () => {
  const { kube, deps } = setup();
  const rs = kube.put(paths.replicaSet(NS, 'web-1'), {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name: 'web-1', namespace: NS },
    spec: { selector: { matchLabels: { app: 'web', 'pod-template-hash': '1' } } },
  });
  const owner = { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1', uid: rs.metadata.uid, controller: true };
  pod(kube, 'web-1-x', { annotation: 'migrate', owner, labels: { app: 'web', 'pod-template-hash': '1' } });
  expect((await answer(deps, review('web-1-x'))).response.allowed).toBe(false);
  expect(migrations(kube)).toHaveLength(1);
});

it.each([
  ['not opted in', { annotation: undefined }, {}],
  [
    'a StatefulSet pod (Steer: a migration gains nothing)',
    { owner: { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 's', uid: 'u', controller: true } },
    {},
  ],
  ['a DaemonSet pod', { owner: { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'd', uid: 'u', controller: true } }, {}],
  ['a pod not Running', { phase: 'Pending' }, {}],
  ["the operator's own eviction", {}, { user: OPERATOR }],
])('lets an eviction pass for %s, starting nothing', async (_what, podOptions, reviewOptions) => {
  const { kube, deps } = setup();
  pod(kube, 'p', { annotation: 'migrate', ...podOptions });
  expect((await answer(deps, review('p', reviewOptions))).response).toEqual({ uid: 'req-1', allowed: true });
  expect(migrations(kube)).toEqual([]);
});

it.each([
  ['in the query', { dryRun: true }],
  ["in the Eviction's deleteOptions (kubectl drain --dry-run=server)", { bodyDryRun: true }],
])('answers a dry run asked %s as the eviction would be answered, creating nothing', async (_where, o) => {
  const { kube, deps } = setup();
  pod(kube, 'trainer', { annotation: 'migrate' });
  const r = await answer(deps, review('trainer', o));
  expect(r.response).toMatchObject({ allowed: false, status: { code: 429 } });
  expect(r.response.status!.message).toMatch(/^dry run: /);
  expect(migrations(kube)).toEqual([]);
});

it("waits for a user's migration of the pod that waits for a slot (no claim yet), even once its own has failed", async () => {
  const { kube, deps } = setup();
  const p = pod(kube, 'trainer', { annotation: 'migrate' });
  kube.put(paths.migration(NS, evictionMigrationName(p.metadata.uid)), {
    apiVersion: 'migration.ai-storage.io/v1alpha1',
    kind: 'PodMigration',
    metadata: { name: evictionMigrationName(p.metadata.uid), namespace: NS },
    spec: { podName: 'trainer', sourceNode: 'node-1' },
    status: { phase: 'Failed', reason: 'MigrationInProgress' },
  });
  kube.put(paths.migration(NS, 'by-hand'), {
    apiVersion: 'migration.ai-storage.io/v1alpha1',
    kind: 'PodMigration',
    metadata: { name: 'by-hand', namespace: NS },
    spec: { podName: 'trainer', sourceNode: 'node-1', targetNode: 'node-2' },
    status: { phase: 'Pending' },
  });
  const r = await answer(deps, review('trainer'));
  expect(r.response).toMatchObject({ allowed: false, status: { code: 429 } });
  expect(r.response.status!.message).toContain(`PodMigration ${NS}/by-hand`);
  // Once that one has ended, and its own has too, the eviction passes.
  kube.update(paths.migration(NS, 'by-hand'), (m) => (m.status = { phase: 'Failed', reason: 'TargetPodUnschedulable' }));
  expect((await answer(deps, review('trainer'))).response.allowed).toBe(true);
});

it('names a migration already moving the pod, rather than starting another', async () => {
  const { kube, deps } = setup();
  const user = kube.put(paths.migration(NS, 'by-hand'), {
    apiVersion: 'migration.ai-storage.io/v1alpha1',
    kind: 'PodMigration',
    metadata: { name: 'by-hand', namespace: NS },
    spec: { podName: 'trainer', sourceNode: 'node-1' },
    status: { phase: 'CreatingTargetPod' },
  });
  const p = pod(kube, 'trainer', { annotation: 'migrate' });
  kube.update(
    paths.pod(NS, 'trainer'),
    (x) => (x.metadata.annotations['migration.ai-storage.io/claimed-by'] = `by-hand/${user.metadata.uid}`),
  );
  const r = await answer(deps, review('trainer'));
  expect(r.response.status!.message).toContain(`PodMigration ${NS}/by-hand`);
  expect(migrations(kube).map((m) => m.metadata.name)).toEqual(['by-hand']);
  expect(p.metadata.uid).toBeDefined();
});

it('lets anything it cannot read pass, and never throws', async () => {
  const { deps } = setup();
  for (const body of [
    undefined,
    null,
    42,
    'x',
    { request: null },
    { request: { operation: 'CREATE', subResource: 'eviction', namespace: '../x', name: 'p' } },
    { request: { operation: 'CREATE', subResource: 'eviction', namespace: NS, name: 'A_B' } },
    { request: { operation: 'DELETE', subResource: 'eviction', namespace: NS, name: 'p' } },
    review('no-such-pod'),
    review('p', { namespace: 5 }),
  ]) {
    const r = await answer(deps, body);
    expect(r.response.allowed).toBe(true);
  }
  // An API server that fails: the eviction passes.
  const failing = {
    ...deps,
    client: { ...deps.client, get: async () => Promise.reject(new Error('boom')) } as unknown as typeof deps.client,
  };
  expect((await answer(failing, review('p'))).response.allowed).toBe(true);
});
