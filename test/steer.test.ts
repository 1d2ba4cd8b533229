// Steer mode: pods of StatefulSets, Jobs and custom controllers, whose replacement only the
// owner can make. The operator serves the admission webhook (its certificate issued by
// itself into a Secret, the CA written into the configuration), arms it for the owner, shows
// with a dry run that it steers, evicts the source, and the owner's replacement of that pod
// is pinned to the target node at admission. With the real kube-controller-manager
// controllers and kube-scheduler. And what a hostile cluster does to it: owners that never
// recreate a pod, Jobs that an eviction would fail, targets the scheduler refuses, two
// migrations of one StatefulSet at once, owners that scale while their pod is away,
// pods that pretend to be the replacement, a hung operator, malformed requests.
import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigration } from '../src/api/types';
import { paths } from '../src/kube/client';
import {
  OperatorProcess,
  createNamespace,
  deleteNamespace,
  eventually,
  followPods,
  freePort,
  getMigration,
  getPod,
  httpsCall,
  k8s,
  migration,
  pmPath,
  podsOfMigration,
  registerWebhook,
  servingCertDir,
  sleep,
  waitForPhase,
} from './helpers';

const CONFIG = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/podmigration-mutating-webhook';
const SECRET = '/api/v1/namespaces/podmigration-system/secrets/podmigration-webhook-cert';
const TRAINERS = 'trainers.test.podmigration.io';
const TRAINER_KIND = 'test.podmigration.io/Trainer';
let ns: string;
let port: number;
let operator: OperatorProcess;

/** config/webhook's configuration, reaching the operator on loopback instead of through its Service. */
const registerMutating = (url = `https://127.0.0.1:${port}/mutate-v1-pod`) => registerWebhook('mutating_webhook.yaml', url);

const armedCondition = async () =>
  (await k8s.get<{ webhooks: { matchConditions: { name: string; expression: string }[] }[] }>(CONFIG)).webhooks[0].matchConditions.find(
    (c) => c.name === 'armed-owners',
  )?.expression;

beforeAll(async () => {
  ns = await createNamespace('steer');
  port = await freePort();
  await k8s.delete(SECRET).catch(() => undefined);
  await registerMutating();
  // A custom kind the operator is told to trust, and may read (as a user would grant it).
  await k8s
    .create('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: TRAINERS },
      spec: {
        group: 'test.podmigration.io',
        names: { plural: 'trainers', singular: 'trainer', kind: 'Trainer' },
        scope: 'Namespaced',
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        ],
      },
    })
    .catch(() => undefined);
  await k8s
    .create('/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'podmigration-steer-trainers' },
      rules: [{ apiGroups: ['test.podmigration.io'], resources: ['trainers'], verbs: ['get'] }],
    })
    .catch(() => undefined);
  await k8s
    .create('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'podmigration-steer-trainers' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'podmigration-steer-trainers' },
      subjects: [{ kind: 'ServiceAccount', name: 'podmigration-operator', namespace: 'podmigration-system' }],
    })
    .catch(() => undefined);
  operator = new OperatorProcess(ns, [
    '--webhook-bind-address',
    `127.0.0.1:${port}`,
    '--steer-owner-kinds',
    `apps/StatefulSet,batch/Job,${TRAINER_KIND}`,
  ]);
  operator.start();
  await eventually(
    'CA bundle injected',
    async () => {
      const c = await k8s.get<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(CONFIG);
      return c.webhooks[0].clientConfig.caBundle ? true : undefined;
    },
    60_000,
  );
});

afterAll(async () => {
  await operator.stop('SIGTERM');
  await k8s.delete(CONFIG).catch(() => undefined);
  await k8s.delete(SECRET).catch(() => undefined);
  await k8s.delete(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${TRAINERS}`).catch(() => undefined);
  await k8s.delete('/apis/rbac.authorization.k8s.io/v1/clusterroles/podmigration-steer-trainers').catch(() => undefined);
  await k8s.delete('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/podmigration-steer-trainers').catch(() => undefined);
  await deleteNamespace(ns);
});

const NODES = ['node-1', 'node-2', 'node-3'];
const ready = (p?: V1Pod) =>
  !!p && !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const otherNode = (...not: string[]) => NODES.find((n) => !not.includes(n))!;
const podSpec = (app: string, extra: object = {}) => ({
  metadata: { labels: { app } },
  spec: {
    terminationGracePeriodSeconds: 1,
    containers: [{ name: 'main', image: 'registry.example/main:1', resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
    ...extra,
  },
});
const podsOf = async (app: string) => (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { labelSelector: `app=${app}` })).items;
const MIGRATION_LABEL = 'migration.ai-storage.io/migration';

async function statefulSet(name: string, replicas = 1, extra: object = {}): Promise<{ uid: string }> {
  const set = await k8s.create<{ metadata: { uid: string } }>(`/apis/apps/v1/namespaces/${ns}/statefulsets`, {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name },
    spec: {
      replicas,
      serviceName: name,
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: { app: name } },
      template: podSpec(name, extra),
    },
  });
  await eventually(`${name}: ${replicas} Ready`, async () => {
    const pods = await podsOf(name);
    return pods.length === replicas && pods.every(ready) ? true : undefined;
  });
  return { uid: set.metadata.uid };
}

async function job(name: string, spec: object): Promise<{ uid: string }> {
  const j = await k8s.create<{ metadata: { uid: string } }>(`/apis/batch/v1/namespaces/${ns}/jobs`, {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name },
    spec: { template: { ...podSpec(name), spec: { ...podSpec(name).spec, restartPolicy: 'Never' } }, ...spec },
  });
  return { uid: j.metadata.uid };
}

const jobStatus = (name: string) =>
  k8s.get<{ status?: { failed?: number; conditions?: { type: string; status: string }[] } }>(
    `/apis/batch/v1/namespaces/${ns}/jobs/${name}`,
  );

async function move(name: string, pod: V1Pod, spec: { targetNode?: string } & Record<string, unknown> = {}): Promise<PodMigration> {
  await k8s.create(
    pmPath(ns),
    migration(ns, name, {
      podName: pod.metadata!.name!,
      sourceNode: pod.spec!.nodeName!,
      targetNode: otherNode(pod.spec!.nodeName!),
      metricsDelaySeconds: 0,
      ...spec,
    }),
  );
  return waitForPhase(ns, name, ['Completed', 'Failed', 'Cancelled'], 120_000);
}

/** A refusal in step 1: the pod as it was, nothing made, the webhook not armed. */
async function refused(name: string, pod: V1Pod, reason: string, message: RegExp, spec: Record<string, unknown> = {}): Promise<void> {
  const pm = await move(name, pod, spec);
  expect(pm.status).toMatchObject({ phase: 'Failed', reason, step: 1 });
  expect(pm.status!.message).toMatch(message);
  const after = await getPod(ns, pod.metadata!.name!);
  expect([after?.metadata?.uid, after?.metadata?.deletionTimestamp]).toEqual([pod.metadata!.uid, undefined]);
  expect(await podsOfMigration(ns, name)).toEqual([]);
}

it('issued its own serving certificate into its Secret', async () => {
  const secret = await k8s.get<{ type: string; data: Record<string, string> }>(SECRET);
  expect(secret.type).toBe('kubernetes.io/tls');
  expect(Object.keys(secret.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
  const c = await k8s.get<{ webhooks: { clientConfig: { caBundle: string } }[] }>(CONFIG);
  expect(c.webhooks[0].clientConfig.caBundle).toBe(secret.data['ca.crt']);
});

it('moves a StatefulSet pod: the same name, now on the target node, and disarms the webhook after', async () => {
  await statefulSet('notebook');
  const source = (await getPod(ns, 'notebook-0'))!;
  const to = otherNode(source.spec!.nodeName!);
  expect(await armedCondition()).toBe('false');
  const pm = await move('move-notebook', source, { targetNode: to });
  expect(pm.status).toMatchObject({
    phase: 'Completed',
    mode: 'Steer',
    steer: { owner: { kind: 'StatefulSet', name: 'notebook' }, replacement: { name: 'notebook-0' } },
    targetPod: { name: 'notebook-0' },
  });
  const now = await getPod(ns, 'notebook-0');
  expect(now!.metadata!.uid).not.toBe(source.metadata!.uid);
  expect(now!.spec!.nodeName).toBe(to);
  expect(ready(now)).toBe(true);
  expect(now!.metadata!.labels![MIGRATION_LABEL]).toBe('move-notebook');
  // The webhook was armed for the StatefulSet's pods only while the migration waited.
  expect(operator.log()).toMatch(/"dryRun":true[^\n]*steering the replacement pod|steering the replacement pod[^\n]*"dryRun":true/);
  await eventually('webhook disarmed', async () => ((await armedCondition()) === 'false' ? true : undefined), 10_000);
});

it('leaves the node to kube-scheduler when spec.targetNode is unset: the replacement is kept off the source, and status says where', async () => {
  await statefulSet('anywhere');
  const source = (await getPod(ns, 'anywhere-0'))!;
  const from = source.spec!.nodeName!;
  const pm = await move('move-anywhere', source, { targetNode: undefined });
  expect(pm.status).toMatchObject({ phase: 'Completed', mode: 'Steer', targetPod: { name: 'anywhere-0' } });
  const now = (await getPod(ns, 'anywhere-0'))!;
  expect(now.metadata!.uid).not.toBe(source.metadata!.uid);
  expect(now.spec!.nodeName).not.toBe(from);
  expect(pm.status!.targetNode).toBe(now.spec!.nodeName);
  expect(pm.status!.targetPod!.node).toBe(now.spec!.nodeName);
  expect(now.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms).toEqual([
    { matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: [from] }] },
  ]);
});

it('refuses, touching nothing, a pod no node but its own could take, the scheduler choosing', async () => {
  await statefulSet('rooted', 1, { nodeSelector: { 'kubernetes.io/hostname': 'node-1' } });
  const source = (await getPod(ns, 'rooted-0'))!;
  expect(source.spec!.nodeName).toBe('node-1');
  await refused(
    'move-rooted',
    source,
    'TargetPodUnschedulable',
    /^no node qualifies: node \S+ (has taints|does not match the pod's nodeSelector)/,
    {
      targetNode: undefined,
    },
  );
});

it("moves a Job's running pod, and the Job still completes", async () => {
  await job('train', { backoffLimit: 4 });
  const source = await eventually('Job pod Ready', async () => (await podsOf('train')).find(ready));
  const to = otherNode(source.spec!.nodeName!);
  const pm = await move('move-train', source, { targetNode: to });
  expect(pm.status).toMatchObject({ phase: 'Completed', mode: 'Steer', steer: { replacement: { onlyNewPod: true } } });
  const [replacement] = await podsOfMigration(ns, 'move-train');
  expect(replacement.spec!.nodeName).toBe(to);
  expect(replacement.metadata!.ownerReferences![0]).toMatchObject({ kind: 'Job', name: 'train' });
  // The work finishes on the new node (the fake kubelet is told so): the Job completes.
  await k8s.replace(`${paths.pod(ns, replacement.metadata!.name!)}/status`, {
    ...replacement,
    status: {
      ...replacement.status,
      phase: 'Succeeded',
      conditions: replacement.status!.conditions!.map((c) => (c.type === 'Ready' ? { ...c, status: 'False' } : c)),
      containerStatuses: replacement.status!.containerStatuses!.map((s) => ({
        ...s,
        ready: false,
        started: false,
        state: {
          terminated: { exitCode: 0, reason: 'Completed', startedAt: s.state!.running!.startedAt, finishedAt: new Date().toISOString() },
        },
      })),
    },
  });
  await eventually(
    'Job Complete',
    async () =>
      (await jobStatus('train')).status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') ? true : undefined,
    60_000,
  );
});

describe('never fails a Job', () => {
  it('refuses a pod whose eviction the Job would count past its backoffLimit (EvictionWouldFailOwner)', async () => {
    await job('strict', { backoffLimit: 0 });
    const pod = await eventually('strict pod Ready', async () => (await podsOf('strict')).find(ready));
    await refused('move-strict', pod, 'EvictionWouldFailOwner', /failures 1 and 2 of Job strict, whose backoffLimit is 0/);
    await sleep(1_000);
    expect((await jobStatus('strict')).status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True') ?? false).toBe(false);
  });

  it('moves it when the Job ignores disruptions (podFailurePolicy), and the Job does not fail', async () => {
    await job('tolerant', {
      backoffLimit: 0,
      podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }] },
    });
    const pod = await eventually('tolerant pod Ready', async () => (await podsOf('tolerant')).find(ready));
    const pm = await move('move-tolerant', pod);
    expect(pm.status).toMatchObject({ phase: 'Completed', mode: 'Steer' });
    await sleep(2_000);
    const j = await jobStatus('tolerant');
    expect([j.status?.failed ?? 0, j.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True') ?? false]).toEqual([
      0,
      false,
    ]);
  });

  it("steers an Indexed Job's replacement by its completion index, and leaves the other index alone", async () => {
    await job('shards', { completionMode: 'Indexed', completions: 2, parallelism: 2, backoffLimit: 4 });
    const pods = await eventually('2 shard pods Ready', async () => {
      const all = (await podsOf('shards')).filter(ready);
      return all.length === 2 ? all : undefined;
    });
    const index = (p: V1Pod) => p.metadata!.annotations!['batch.kubernetes.io/job-completion-index'];
    const source = pods.find((p) => index(p) === '1')!;
    const other = pods.find((p) => index(p) === '0')!;
    const pm = await move('move-shard', source);
    expect(pm.status).toMatchObject({ phase: 'Completed', steer: { replacement: { completionIndex: '1' } } });
    const [replacement] = await podsOfMigration(ns, 'move-shard');
    expect([index(replacement), replacement.spec!.nodeName]).toEqual(['1', pm.spec.targetNode]);
    const untouched = await getPod(ns, other.metadata!.name!);
    expect([untouched?.metadata?.uid, untouched?.metadata?.labels?.[MIGRATION_LABEL]]).toEqual([other.metadata!.uid, undefined]);
  });

  it('does not fail it when its pinned replacement cannot be placed: the replacement is evicted, as the source was, and made anew', async () => {
    const antiAffinity = {
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [
          { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { role: 'job-blocker' } } },
        ],
      },
    };
    await k8s.create(`/apis/batch/v1/namespaces/${ns}/jobs`, {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'boxed' },
      spec: {
        backoffLimit: 0,
        podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }] },
        template: {
          ...podSpec('boxed', { affinity: antiAffinity }),
          spec: { ...podSpec('boxed', { affinity: antiAffinity }).spec, restartPolicy: 'Never' },
        },
      },
    });
    const source = await eventually('boxed pod Ready', async () => (await podsOf('boxed')).find(ready));
    const to = otherNode(source.spec!.nodeName!);
    await k8s.create(paths.pods(ns), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'job-blocker', namespace: ns, labels: { role: 'job-blocker' } },
      spec: { ...podSpec('job-blocker').spec, nodeName: to },
    });
    const pm = await move('move-boxed', source, { targetNode: to });
    expect([pm.status!.phase, pm.status!.reason]).toEqual(['Failed', 'TargetPodUnschedulable']);
    const back = await eventually(
      'the Job runs a pod again, unpinned',
      async () => (await podsOf('boxed')).find((p) => ready(p) && !p.metadata?.labels?.[MIGRATION_LABEL]),
      60_000,
    );
    expect(back.spec!.nodeName).not.toBe(to);
    const j = await jobStatus('boxed');
    expect(j.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True') ?? false).toBe(false);
  });

  it('refuses a pod of a Job that runs several at once and is not Indexed (ReplacementNotIdentifiable)', async () => {
    await job('swarm', { completions: 4, parallelism: 2, backoffLimit: 4 });
    const pod = await eventually('swarm pod Ready', async () => (await podsOf('swarm')).find(ready));
    await refused('move-swarm', pod, 'ReplacementNotIdentifiable', /runs up to 2 pods at once and is not Indexed/);
  });
});

describe('only owners that recreate the pod', () => {
  const trainer = async (name: string) =>
    eventually(`Trainer ${name}`, () =>
      k8s.create<{ metadata: { name: string; uid: string } }>(`/apis/test.podmigration.io/v1/namespaces/${ns}/trainers`, {
        apiVersion: 'test.podmigration.io/v1',
        kind: 'Trainer',
        metadata: { name },
      }),
    );
  const ownedPod = async (name: string, owner: { apiVersion: string; kind: string; name: string; uid: string }) => {
    await k8s.create(paths.pods(ns), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, ownerReferences: [{ ...owner, controller: true }], ...podSpec(name).metadata },
      spec: podSpec(name).spec,
    });
    return eventually(`${name} Ready`, async () => {
      const p = await getPod(ns, name);
      return ready(p) ? p : undefined;
    });
  };

  it('refuses a pod whose controlling owner is a ConfigMap, touching nothing (OwnerWillNotRecreate)', async () => {
    const cm = await k8s.create<{ metadata: { uid: string } }>(paths.pods(ns).replace('/pods', '/configmaps'), {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'holder' },
    });
    const pod = await ownedPod('held', { apiVersion: 'v1', kind: 'ConfigMap', name: 'holder', uid: cm.metadata.uid });
    await refused(
      'move-held',
      pod,
      'OwnerWillNotRecreate',
      /controlled by ConfigMap holder \(\/ConfigMap\), which is not known to recreate the pods it owns/,
    );
  });

  it('refuses a pod of a trusted kind whose owner is being deleted', async () => {
    const path = `/apis/test.podmigration.io/v1/namespaces/${ns}/trainers/leaving`;
    const t = await eventually('Trainer leaving', () =>
      k8s.create<{ metadata: { uid: string } }>(`/apis/test.podmigration.io/v1/namespaces/${ns}/trainers`, {
        apiVersion: 'test.podmigration.io/v1',
        kind: 'Trainer',
        metadata: { name: 'leaving', finalizers: ['test.podmigration.io/hold'] },
      }),
    );
    const pod = await ownedPod('leaving-0', {
      apiVersion: 'test.podmigration.io/v1',
      kind: 'Trainer',
      name: 'leaving',
      uid: t.metadata.uid,
    });
    await k8s.delete(path);
    try {
      await refused('move-leaving', pod, 'OwnerWillNotRecreate', /Trainer leaving, which owns the pod, is being deleted/);
    } finally {
      await k8s.mergePatch(path, { metadata: { finalizers: null } });
    }
  });

  it('steers the replacement of a custom controller it is told to trust (same name)', async () => {
    const t = await trainer('llm');
    const owner = { apiVersion: 'test.podmigration.io/v1', kind: 'Trainer', name: 'llm', uid: t.metadata.uid };
    let running = true;
    // The custom controller: keeps its pod llm-0, made anew when it is gone.
    const controller = (async () => {
      while (running) {
        if (!(await getPod(ns, 'llm-0'))) {
          await k8s
            .create(paths.pods(ns), {
              apiVersion: 'v1',
              kind: 'Pod',
              metadata: { name: 'llm-0', namespace: ns, ownerReferences: [{ ...owner, controller: true }], ...podSpec('llm').metadata },
              spec: podSpec('llm').spec,
            })
            .catch(() => undefined);
        }
        await sleep(200);
      }
    })();
    try {
      const source = await eventually('llm-0 Ready', async () => {
        const p = await getPod(ns, 'llm-0');
        return ready(p) ? p : undefined;
      });
      const pm = await move('move-llm', source);
      expect(pm.status).toMatchObject({
        phase: 'Completed',
        mode: 'Steer',
        steer: { owner: { kind: 'Trainer', name: 'llm' } },
        targetPod: { name: 'llm-0' },
      });
      expect((await getPod(ns, 'llm-0'))!.spec!.nodeName).toBe(pm.spec.targetNode);
    } finally {
      running = false;
      await controller;
    }
  });
});

describe('the pin never keeps a workload down', () => {
  it('refuses a target whose taints the pod does not tolerate before anything is touched', async () => {
    await statefulSet('tainted');
    const pod = (await getPod(ns, 'tainted-0'))!;
    const to = otherNode(pod.spec!.nodeName!);
    const path = `/api/v1/nodes/${to}`;
    await k8s.mergePatch(path, { spec: { taints: [{ key: 'test.podmigration/maintenance', effect: 'NoSchedule' }] } });
    await sleep(1_100); // the operator shares what it reads of a node for a second
    try {
      await k8s.create(
        pmPath(ns),
        migration(ns, 'move-tainted', { podName: 'tainted-0', sourceNode: pod.spec!.nodeName!, targetNode: to }),
      );
      const pm = await waitForPhase(ns, 'move-tainted', ['Failed', 'Completed']);
      expect([pm.status!.phase, pm.status!.reason, pm.status!.step, pm.status!.message]).toEqual([
        'Failed',
        'TargetPodUnschedulable',
        1,
        expect.any(String),
      ]);
      expect(pm.status!.message).toMatch(
        /taints the pod does not tolerate: test\.podmigration\/maintenance:NoSchedule.*nothing was touched/,
      );
      expect((await getPod(ns, 'tainted-0'))!.metadata!.uid).toBe(pod.metadata!.uid);
    } finally {
      await k8s.mergePatch(path, { spec: { taints: null } });
      await sleep(1_100); // the operator shares what it reads of a node for a second
    }
  });

  it('removes a pinned replacement the scheduler refuses, once disarmed, so the owner recreates it unpinned', async () => {
    // The scheduler refuses the target for a reason step 1 does not check (inter-pod
    // anti-affinity against a pod that runs there).
    const antiAffinity = {
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [
          { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { role: 'blocker' } } },
        ],
      },
    };
    const set = await statefulSet('picky', 1, { affinity: antiAffinity });
    const source = (await getPod(ns, 'picky-0'))!;
    const to = otherNode(source.spec!.nodeName!);
    await k8s.create(paths.pods(ns), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'blocker', namespace: ns, labels: { role: 'blocker' } },
      spec: { ...podSpec('blocker').spec, nodeName: to },
    });
    let pendingPinned = 0;
    const follow = await followPods(ns, (pods) => {
      const p = pods.find((x) => x.metadata?.name === 'picky-0' && x.metadata?.labels?.[MIGRATION_LABEL]);
      if (p && !p.spec?.nodeName) pendingPinned += 1;
    });
    const pm = await move('move-picky', source, { targetNode: to });
    expect([pm.status!.phase, pm.status!.reason, pm.status!.step, pm.status!.message]).toEqual([
      'Failed',
      'TargetPodUnschedulable',
      3,
      expect.any(String),
    ]);
    expect(pm.status!.message).toMatch(
      /never ran, and is removed once the webhook is disarmed, so that StatefulSet picky recreates it unpinned/,
    );
    expect(pendingPinned).toBeGreaterThan(0); // the pinned replacement did exist
    // The StatefulSet runs again, unpinned, elsewhere; and the status says so.
    const back = await eventually(
      'picky-0 Ready, unpinned',
      async () => {
        const p = await getPod(ns, 'picky-0');
        return ready(p) && !p!.metadata?.labels?.[MIGRATION_LABEL] ? p : undefined;
      },
      60_000,
    );
    await follow.stop();
    expect(back!.spec!.nodeName).not.toBe(to);
    const rolledBack = await eventually(
      'RolledBack',
      async () => (await getMigration(ns, 'move-picky')).status?.conditions?.find((c) => c.type === 'RolledBack'),
      60_000,
    );
    expect(rolledBack).toMatchObject({ status: 'False', reason: 'OwnerRecreatedPod' });
    expect(rolledBack.message).toMatch(
      new RegExp(
        `removed pod picky-0, pinned to ${to}, which was not Ready; source pod picky-0 was evicted; StatefulSet picky recreated it, not steered: picky-0 on node-\\d`,
      ),
    );
    expect(await armedCondition()).not.toContain(set.uid);
  });
});

describe('steers only the replacement of its own source', () => {
  it('swaps two pods of one StatefulSet between nodes: each migration gets its own pod', async () => {
    await statefulSet('db', 2);
    const [db0, db1] = [(await getPod(ns, 'db-0'))!, (await getPod(ns, 'db-1'))!];
    const [n0, n1] = [db0.spec!.nodeName!, db1.spec!.nodeName!];
    const to0 = n1 !== n0 ? n1 : otherNode(n0);
    const to1 = n1 !== n0 ? n0 : otherNode(n0, to0);
    await Promise.all([
      k8s.create(pmPath(ns), migration(ns, 'move-db-0', { podName: 'db-0', sourceNode: n0, targetNode: to0, metricsDelaySeconds: 0 })),
      k8s.create(pmPath(ns), migration(ns, 'move-db-1', { podName: 'db-1', sourceNode: n1, targetNode: to1, metricsDelaySeconds: 0 })),
    ]);
    const [a, b] = await Promise.all([
      waitForPhase(ns, 'move-db-0', ['Completed', 'Failed'], 120_000),
      waitForPhase(ns, 'move-db-1', ['Completed', 'Failed'], 120_000),
    ]);
    expect([a.status!.phase, a.status!.targetPod?.name, b.status!.phase, b.status!.targetPod?.name]).toEqual([
      'Completed',
      'db-0',
      'Completed',
      'db-1',
    ]);
    const [now0, now1] = [(await getPod(ns, 'db-0'))!, (await getPod(ns, 'db-1'))!];
    expect([now0.spec!.nodeName, now0.metadata!.labels![MIGRATION_LABEL]]).toEqual([to0, 'move-db-0']);
    expect([now1.spec!.nodeName, now1.metadata!.labels![MIGRATION_LABEL]]).toEqual([to1, 'move-db-1']);
  });

  it('neither pins nor claims the pods a StatefulSet adds while its pod is away, nor a pod that pretends to be its', async () => {
    const set = await statefulSet('grow', 1);
    const source = (await getPod(ns, 'grow-0'))!;
    const to = otherNode(source.spec!.nodeName!);
    // A budget holds the eviction back while the webhook is armed.
    await k8s.create(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`, {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'grow' },
      spec: { selector: { matchLabels: { app: 'grow' } }, maxUnavailable: 0 },
    });
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-grow', { podName: 'grow-0', sourceNode: source.spec!.nodeName!, targetNode: to, metricsDelaySeconds: 0 }),
    );
    await eventually('eviction blocked', async () => {
      const pm = await getMigration(ns, 'move-grow');
      return pm.status?.conditions?.some((c) => c.type === 'Reconciling' && c.reason === 'EvictionBlocked') ? true : undefined;
    });
    // A pod that carries the StatefulSet's UID as its controller, created while armed.
    const intruder = await k8s.create<V1Pod>(paths.pods(ns), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'intruder',
        namespace: ns,
        labels: { role: 'intruder' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'grow', uid: set.uid, controller: true }],
      },
      spec: podSpec('intruder').spec,
    });
    expect([intruder.metadata?.labels?.[MIGRATION_LABEL], intruder.spec?.affinity]).toEqual([undefined, undefined]);
    // The budget lifts; the StatefulSet is scaled up the moment its pod is evicted.
    await k8s.delete(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/grow`);
    await eventually(
      'grow-0 evicted',
      async () => {
        const p = await getPod(ns, 'grow-0');
        return !p || p.metadata?.uid !== source.metadata!.uid || p.metadata?.deletionTimestamp ? true : undefined;
      },
      30_000,
    );
    await k8s.mergePatch(`/apis/apps/v1/namespaces/${ns}/statefulsets/grow`, { spec: { replicas: 3 } });
    const pm = await waitForPhase(ns, 'move-grow', ['Completed', 'Failed'], 120_000);
    expect(pm.status).toMatchObject({ phase: 'Completed', targetPod: { name: 'grow-0' } });
    expect((await getPod(ns, 'grow-0'))!.spec!.nodeName).toBe(to);
    const siblings = await eventually('grow-1 and grow-2', async () => {
      const all = (await podsOf('grow')).filter((p) => p.metadata!.name !== 'grow-0');
      return all.length === 2 ? all : undefined;
    });
    for (const p of siblings)
      expect([p.metadata!.name, p.metadata!.labels?.[MIGRATION_LABEL], p.spec!.affinity]).toEqual([p.metadata!.name, undefined, undefined]);
  });

  it('says where the pod went when its owner is made anew meanwhile (deleted with its pods orphaned, applied again)', async () => {
    const graceful = { terminationGracePeriodSeconds: 15 };
    const set = (name: string) => ({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name },
      spec: {
        replicas: 1,
        serviceName: name,
        selector: { matchLabels: { app: name } },
        template: {
          ...podSpec(name, graceful),
          metadata: { labels: { app: name }, annotations: { 'kwok.podmigration.test/graceful': 'true' } },
        },
      },
    });
    await k8s.create(`/apis/apps/v1/namespaces/${ns}/statefulsets`, set('remade'));
    const source = await eventually('remade-0 Ready', async () => {
      const p = await getPod(ns, 'remade-0');
      return ready(p) ? p : undefined;
    });
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-remade', {
        podName: 'remade-0',
        sourceNode: source.spec!.nodeName!,
        targetNode: otherNode(source.spec!.nodeName!),
        readyTimeoutSeconds: 60,
      }),
    );
    await eventually(
      'eviction asked for',
      async () => ((await getMigration(ns, 'move-remade')).status?.sourcePod?.evictionRequestedAt ? true : undefined),
      30_000,
    );
    await k8s.delete(`/apis/apps/v1/namespaces/${ns}/statefulsets/remade`, {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      propagationPolicy: 'Orphan',
    });
    await eventually('StatefulSet gone', async () =>
      (await k8s.get(`/apis/apps/v1/namespaces/${ns}/statefulsets/remade`).catch(() => undefined)) ? undefined : true,
    );
    await k8s.create(`/apis/apps/v1/namespaces/${ns}/statefulsets`, set('remade'));
    const pm = await waitForPhase(ns, 'move-remade', ['Completed', 'Failed'], 120_000);
    expect([pm.status!.phase, pm.status!.reason]).toEqual(['Failed', 'ReplacementNotSteered']);
    const rb = await eventually(
      'RolledBack',
      async () => (await getMigration(ns, 'move-remade')).status?.conditions?.find((c) => c.type === 'RolledBack'),
      60_000,
    );
    expect(rb).toMatchObject({ status: 'False', reason: 'OwnerRecreatedPod' });
    expect(rb.message).toMatch(/source pod remade-0 was evicted; StatefulSet remade recreated it, not steered: remade-0 on node-\d/);
  });

  it('ignores a cancellation once the source is asked to go: the owner recreates it, and the migration says where', async () => {
    await statefulSet('steady');
    const source = (await getPod(ns, 'steady-0'))!;
    const to = otherNode(source.spec!.nodeName!);
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-steady', { podName: 'steady-0', sourceNode: source.spec!.nodeName!, targetNode: to, metricsDelaySeconds: 0 }),
    );
    await eventually(
      'eviction asked for',
      async () => ((await getMigration(ns, 'move-steady')).status?.sourcePod?.evictionRequestedAt ? true : undefined),
      30_000,
    );
    await k8s.mergePatch(pmPath(ns, 'move-steady'), { metadata: { annotations: { 'migration.ai-storage.io/cancel': 'true' } } });
    const pm = await waitForPhase(ns, 'move-steady', ['Completed', 'Failed', 'Cancelled'], 120_000);
    expect(pm.status).toMatchObject({ phase: 'Completed', targetPod: { name: 'steady-0' } });
    expect((await getPod(ns, 'steady-0'))!.spec!.nodeName).toBe(to);
  });
});

describe('the webhook hurts nothing', () => {
  it('puts its CA bundle back before arming, should a re-applied configuration have dropped it', async () => {
    const c = await k8s.get<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(CONFIG);
    delete c.webhooks[0].clientConfig.caBundle;
    await k8s.replace(CONFIG, c);
    await statefulSet('rebundled');
    const source = (await getPod(ns, 'rebundled-0'))!;
    const pm = await move('move-rebundled', source);
    expect([pm.status!.phase, pm.status!.targetPod?.name]).toEqual(['Completed', 'rebundled-0']);
  });

  it('answers every malformed request, and keeps running', async () => {
    const ca = Buffer.from((await k8s.get<{ data: Record<string, string> }>(SECRET)).data['ca.crt'], 'base64').toString();
    const bodies = [
      'null',
      '0',
      '"x"',
      '[]',
      '{}',
      '{"request":null}',
      '{"request":{"uid":"u","operation":"CREATE","namespace":"x","object":{"metadata":{"ownerReferences":"not-a-list"},"spec":{}}}}',
      '{"request":{"uid":"u","operation":"CREATE","namespace":"x","object":{"metadata":{"ownerReferences":[{"uid":"a","controller":true}]},"spec":{"containers":"x"}}}}',
      '{"request":{"uid":{"x":1},"operation":"CREATE","namespace":7,"object":[]}}',
      '{not json',
      ...Array.from({ length: 50 }, (_, i) =>
        JSON.stringify({
          request: {
            uid: `r${i}`,
            operation: 'CREATE',
            namespace: ns,
            object: {
              metadata: { ownerReferences: [{ uid: 'x'.repeat(i), controller: i % 2 === 0 }] },
              spec: { containers: i % 3 ? [] : null },
            },
          },
        }),
      ),
    ];
    for (const body of bodies) {
      const r = await httpsCall(port, '/mutate-v1-pod', ca, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      expect([body, r.status === 200 ? JSON.parse(r.body).response.allowed : r.status]).toEqual([body, body === '{not json' ? 400 : true]);
    }
    expect(operator.pid && process.kill(operator.pid, 0)).toBe(true);
    expect((await httpsCall(port, '/mutate-v1-pod', ca, { method: 'POST', body: 'null' })).status).toBe(200);
  });

  it('never delays an owner while no migration waits on it: not with the operator down, nor hung', async () => {
    const set = await statefulSet('side', 1);
    const create = async (name: string) => {
      const t0 = Date.now();
      await k8s.create(paths.pods(ns), {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name,
          namespace: ns,
          labels: { role: 'side' },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'side', uid: set.uid, controller: true }],
        },
        spec: podSpec('side').spec,
      });
      return Date.now() - t0;
    };
    const up = await create('side-up');
    operator.signal('SIGSTOP');
    let hung: number;
    try {
      hung = await create('side-hung');
    } finally {
      operator.signal('SIGCONT');
    }
    await operator.stop('SIGKILL');
    const down = await create('side-down');
    operator.start();
    process.stdout.write(`owned pod creation: ${up} ms with the webhook up, ${hung} ms with it hung, ${down} ms with it down\n`);
    // The webhook's timeout is 2 s; at rest the API server does not call it at all.
    expect(hung).toBeLessThan(1_000);
    expect(down).toBeLessThan(1_000);
    await eventually(
      'operator back',
      async () => (operator.log().split('serving the admission webhooks').length > 2 ? true : undefined),
      30_000,
    );
  });

  it('serves with a certificate from --webhook-cert-dir (cert-manager) and admits what it does not steer unchanged', async () => {
    const { dir, ca } = await servingCertDir('webhook-certs');
    const p = await freePort();
    const other = new OperatorProcess(ns, ['--webhook-bind-address', `127.0.0.1:${p}`, '--webhook-cert-dir', dir], `${ns}-certdir`);
    other.start();
    try {
      await eventually('webhook served', async () => (other.log().includes('serving the admission webhooks') ? true : undefined));
      const pod = {
        metadata: { name: 'x', ownerReferences: [{ apiVersion: 'v1', kind: 'Thing', name: 't', uid: 'u', controller: true }] },
        spec: { containers: [] },
      };
      const reply = await httpsCall(p, '/mutate-v1-pod', ca, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          request: { uid: 'r-1', operation: 'CREATE', namespace: ns, object: pod },
        }),
      });
      const answer = JSON.parse(reply.body) as { response: { uid: string; allowed: boolean; patch?: string } };
      expect(answer.response).toEqual({ uid: 'r-1', allowed: true });
    } finally {
      await other.stop('SIGTERM');
    }
  });

  it('evicts nothing when the webhook is not reached (ReplacementNotSteered before the eviction)', async () => {
    await registerMutating(`https://127.0.0.1:${await freePort()}/mutate-v1-pod`);
    try {
      await statefulSet('lost');
      const source = (await getPod(ns, 'lost-0'))!;
      const pm = await move('move-lost', source);
      expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'ReplacementNotSteered', step: 3 });
      expect(pm.status!.message).toMatch(
        /did not steer a dry run of StatefulSet lost's replacement within 15s of being armed .*nothing was evicted/,
      );
      const after = await getPod(ns, 'lost-0');
      expect([after?.metadata?.uid, after?.metadata?.deletionTimestamp]).toEqual([source.metadata!.uid, undefined]);
    } finally {
      await registerMutating();
    }
  });
});
