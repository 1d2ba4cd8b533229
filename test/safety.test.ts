// What goes wrong in pod migration, made explicit: controller-owned pods, ReadWriteOnce
// volumes, concurrent migrations of one pod, unfit target nodes, quotas and disruption
// budgets. Each ends in a distinct, documented outcome with nothing lost.
import { randomBytes } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigration, PodMigrationSpec } from '../src/api/types';
import { paths } from '../src/kube/client';
import {
  type KwokNodeOptions,
  OperatorProcess,
  kwokNode,
  TRAINING_CONTAINERS,
  claimsOfMigration,
  createNamespace,
  createRunningPod,
  deleteNamespace,
  eventually,
  getMigration,
  getPod,
  k8s,
  migration,
  pmPath,
  podManifest,
  podsOfMigration,
  waitForPhase,
} from './helpers';

let ns: string;
let operator: OperatorProcess;
const nodes: string[] = [];
const extraNamespaces: string[] = [];

beforeAll(async () => {
  ns = await createNamespace('safety');
  operator = new OperatorProcess('', ['--max-concurrent-reconciles', '4']);
  operator.start();
});

afterAll(async () => {
  await operator.stop('SIGTERM');
  await deleteNamespace(ns);
  for (const n of extraNamespaces) await deleteNamespace(n);
  for (const n of nodes) await k8s.delete(`/api/v1/nodes/${n}`).catch(() => undefined);
});

async function refused(
  namespace: string,
  pod: V1Pod,
  spec: Partial<PodMigrationSpec>,
  reason: string,
  message: RegExp,
): Promise<PodMigration> {
  const podName = pod.metadata!.name!;
  const name = `move-${podName}`;
  await k8s.create(
    pmPath(namespace),
    migration(namespace, name, { podName, sourceNode: 'node-1', targetNode: 'node-2', preservePV: true, ...spec }),
  );
  const pm = await waitForPhase(namespace, name, ['Failed', 'Completed']);
  expect(pm.status).toMatchObject({ phase: 'Failed', reason });
  expect(pm.status!.message).toMatch(message);
  expect(await podsOfMigration(namespace, name)).toEqual([]);
  if (pm.status!.step === 1) expect(await claimsOfMigration(namespace, name)).toEqual([]);
  const after = await getPod(namespace, podName);
  expect(after!.metadata!.uid).toBe(pod.metadata!.uid);
  expect(after!.metadata!.deletionTimestamp).toBeUndefined();
  return pm;
}

/** A kwok node of this test's own; `managed: false` leaves it never Ready. */
async function node(suffix: string, extra: Omit<KwokNodeOptions, 'cpu'> & { cpu?: string } = {}) {
  const name = await kwokNode(`pf-${randomBytes(2).toString('hex')}-${suffix}`, { ...extra, cpu: extra.cpu ?? '16' });
  nodes.push(name);
  return name;
}

it('refuses a pod controlled by a Job (OwnedByController), touching nothing', async () => {
  const job = await k8s.create<{ metadata: { uid: string } }>(`/apis/batch/v1/namespaces/${ns}/jobs`, {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'train' },
    spec: {
      template: {
        metadata: { labels: { app: 'train' } },
        spec: {
          restartPolicy: 'Never',
          nodeName: 'node-1',
          containers: [{ name: 'train', image: 'trainer', resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
        },
      },
    },
  });
  const pod = await eventually('Job pod Running', async () => {
    const list = await k8s.get<{ items: V1Pod[] }>(`/api/v1/namespaces/${ns}/pods`, { labelSelector: 'app=train' });
    return list.items.find((p) => p.status?.phase === 'Running');
  });
  expect(pod.metadata!.ownerReferences![0].uid).toBe(job.metadata.uid);
  await refused(ns, pod, {}, 'OwnedByController', /controlled by Job train, which would recreate it/);
});

it('refuses a pod with a ReadWriteOnce claim (ReadWriteOnceVolume), naming the claim', async () => {
  await k8s.create(`/api/v1/namespaces/${ns}/persistentvolumeclaims`, {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: 'weights' },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  });
  const manifest = podManifest(ns, 'rwo', 'node-1', TRAINING_CONTAINERS.slice(0, 1));
  manifest.spec!.volumes = [{ name: 'weights', persistentVolumeClaim: { claimName: 'weights' } }];
  const pod = await createRunningPod(manifest);
  await refused(ns, pod, {}, 'ReadWriteOnceVolume', /ReadWriteOnce claims \(weights\)/);
});

it('refuses a second migration of a pod that is being migrated (MigrationInProgress)', async () => {
  const pod = await createRunningPod(
    podManifest(ns, 'busy', 'node-1', TRAINING_CONTAINERS.slice(0, 1), { 'kwok.podmigration.test/unready-on': 'node-2' }),
  );
  await k8s.create(
    pmPath(ns),
    migration(ns, 'first', { podName: 'busy', sourceNode: 'node-1', targetNode: 'node-2', readyTimeoutSeconds: 120 }),
  );
  await waitForPhase(ns, 'first', ['CreatingTargetPod']);
  await k8s.create(pmPath(ns), migration(ns, 'second', { podName: 'busy', sourceNode: 'node-1', targetNode: 'node-3' }));
  const second = await waitForPhase(ns, 'second', ['Failed', 'Completed']);
  expect(second.status).toMatchObject({ phase: 'Failed', reason: 'MigrationInProgress' });
  expect(second.status!.message).toMatch(/already being migrated by PodMigration first/);
  expect(await podsOfMigration(ns, 'second')).toEqual([]);
  // The first one goes on undisturbed.
  expect((await getMigration(ns, 'first')).status!.phase).toBe('CreatingTargetPod');
  expect(await podsOfMigration(ns, 'first')).toHaveLength(1);
  expect((await getPod(ns, 'busy'))!.metadata!.uid).toBe(pod.metadata!.uid);
});

describe('target node pre-flight', () => {
  let pod: V1Pod;
  beforeAll(async () => {
    pod = await createRunningPod(podManifest(ns, 'preflight', 'node-1', TRAINING_CONTAINERS.slice(0, 2)));
  });
  let n = 0;
  const check = async (target: string, reason: string, message: RegExp) => {
    n += 1;
    const name = `pf-${n}`;
    await k8s.create(pmPath(ns), migration(ns, name, { podName: 'preflight', sourceNode: 'node-1', targetNode: target }));
    const pm = await waitForPhase(ns, name, ['Failed', 'Completed']);
    expect(pm.status).toMatchObject({ phase: 'Failed', reason, step: 1 });
    expect(pm.status!.message).toMatch(message);
    expect(await podsOfMigration(ns, name)).toEqual([]);
    expect((await getPod(ns, 'preflight'))!.metadata!.uid).toBe(pod.metadata!.uid);
  };

  it('refuses a node that is not Ready', async () => {
    await check(await node('notready', { managed: false }), 'TargetNodeNotReady', /is not Ready/);
  });
  it('refuses a cordoned node', async () => {
    await check(await node('cordoned', { unschedulable: true }), 'TargetNodeUnschedulable', /is cordoned/);
  });
});

describe('placement by kube-scheduler (the copy is pinned to the target node by node affinity)', () => {
  let n = 0;
  const unschedulable = async (podName: string, target: string, message: RegExp) => {
    n += 1;
    const name = `sched-${n}`;
    const source = (await getPod(ns, podName))!;
    await k8s.create(pmPath(ns), migration(ns, name, { podName, sourceNode: 'node-1', targetNode: target }));
    const pm = await waitForPhase(ns, name, ['Failed', 'Completed']);
    expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'TargetPodUnschedulable', step: 3 });
    expect(pm.status!.message).toMatch(message);
    await eventually('copy removed', async () => ((await podsOfMigration(ns, name)).length === 0 ? true : undefined), 30_000);
    const after = await getPod(ns, podName);
    expect(after!.metadata!.uid).toBe(source.metadata!.uid);
    expect(after!.metadata!.deletionTimestamp).toBeUndefined();
  };

  it('places the copy on the target node through the scheduler, never by spec.nodeName', async () => {
    await createRunningPod(podManifest(ns, 'placed', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-placed', { podName: 'placed', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 }),
    );
    const pm = await waitForPhase(ns, 'move-placed', ['Completed', 'Failed']);
    expect(pm.status!.phase).toBe('Completed');
    const [copy] = await podsOfMigration(ns, 'move-placed');
    expect(copy.spec!.nodeName).toBe('node-2');
    expect(copy.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms).toEqual([
      { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-2'] }] },
    ]);
    // Bound by kube-scheduler (its Scheduled event), not created bound.
    const events = await k8s.get<{ items: { reason: string; source?: { component?: string }; reportingComponent?: string }[] }>(
      paths.events(ns),
      {
        fieldSelector: `involvedObject.name=${copy.metadata!.name},reason=Scheduled`,
      },
    );
    expect(events.items.length).toBe(1);
  });

  it("fails fast with the scheduler's message when the pod's own node affinity excludes the target", async () => {
    const manifest = podManifest(ns, 'affine', 'node-1', TRAINING_CONTAINERS.slice(0, 1));
    manifest.spec!.affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['node-1', 'node-3'] }] }],
        },
      },
    };
    await createRunningPod(manifest);
    await unschedulable(
      'affine',
      'node-2',
      /cannot be scheduled: 0\/\d+ nodes are available: .*didn't match Pod's node affinity\/selector/,
    );
  });

  it('leaves taints to the scheduler', async () => {
    await createRunningPod(podManifest(ns, 'taints', 'node-1', TRAINING_CONTAINERS.slice(0, 2)));
    await unschedulable(
      'taints',
      await node('tainted', { taints: [{ key: 'dedicated', value: 'inference', effect: 'NoSchedule' }] }),
      /1 node\(s\) had untolerated taint/,
    );
  });

  it('leaves room to the scheduler', async () => {
    // The two containers request 1000m; the node has 1200m of which a pod takes 500m.
    const small = await node('small', { cpu: '1200m' });
    await createRunningPod(podManifest(ns, 'room', 'node-1', TRAINING_CONTAINERS.slice(0, 2)));
    await createRunningPod(podManifest(ns, 'neighbour', small, [{ name: 'n', cpu: '500m', memory: '64Mi' }]));
    await unschedulable('room', small, /Insufficient cpu/);
  });
});

it('ends in QuotaExceeded when a ResourceQuota refuses the new pod, source intact', async () => {
  const quotaNs = await createNamespace('quota');
  extraNamespaces.push(quotaNs);
  await k8s.create(`/api/v1/namespaces/${quotaNs}/resourcequotas`, {
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: { name: 'one-pod' },
    spec: { hard: { pods: '1' } },
  });
  await eventually('quota observed', async () => {
    const q = await k8s.get<{ status?: { used?: Record<string, string> } }>(`/api/v1/namespaces/${quotaNs}/resourcequotas/one-pod`);
    return q.status?.used ? true : undefined;
  });
  const pod = await createRunningPod(podManifest(quotaNs, 'quota', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
  const pm = await refused(quotaNs, pod, { preservePV: false }, 'QuotaExceeded', /exceeded quota: one-pod/);
  expect(pm.status!.step).toBe(3);
});

describe('PodDisruptionBudgets', () => {
  const pdb = (name: string, spec: object) =>
    k8s.create(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`, {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name },
      spec: { selector: { matchLabels: { app: name } }, ...spec },
    });

  it('evicts the source once the budget allows it (the Ready copy counts)', async () => {
    await pdb('pdb-ok', { minAvailable: 1 });
    await createRunningPod(podManifest(ns, 'pdb-ok', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-pdb-ok', { podName: 'pdb-ok', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 }),
    );
    const pm = await waitForPhase(ns, 'move-pdb-ok', ['Completed', 'Failed']);
    expect(pm.status!.phase).toBe('Completed');
    expect(pm.status!.steps![3].message).toMatch(/evicted/);
    await eventually('source gone', async () => ((await getPod(ns, 'pdb-ok')) ? undefined : true), 30_000);
  });

  it('waits while the budget blocks eviction, then rolls back at the deadline', async () => {
    await pdb('pdb-blocked', { maxUnavailable: 0 });
    const pod = await createRunningPod(podManifest(ns, 'pdb-blocked', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-pdb-blocked', { podName: 'pdb-blocked', sourceNode: 'node-1', targetNode: 'node-2', timeoutSeconds: 10 }),
    );
    const blocked = await eventually('EvictionBlocked condition', async () => {
      const pm = await getMigration(ns, 'move-pdb-blocked');
      const c = pm.status?.conditions?.find((x) => x.type === 'Reconciling');
      return c?.reason === 'EvictionBlocked' ? pm : undefined;
    });
    expect(blocked.status!.phase).toBe('DeletingSourcePod');
    expect(blocked.status!.message).toMatch(/disruption budget/);
    const pm = await waitForPhase(ns, 'move-pdb-blocked', ['Failed', 'Completed'], 60_000);
    expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'Timeout' });
    await eventually(
      'target removed',
      async () => ((await podsOfMigration(ns, 'move-pdb-blocked')).length === 0 ? true : undefined),
      30_000,
    );
    const source = await getPod(ns, 'pdb-blocked');
    expect(source!.metadata!.uid).toBe(pod.metadata!.uid);
    expect(source!.metadata!.deletionTimestamp).toBeUndefined();
  });
});
