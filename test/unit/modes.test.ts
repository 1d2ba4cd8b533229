// The reconciler, its steps and every mode, run against an in-memory API server with a
// clock of the test's own, table-driven over mode × outcome: what each ends in, what its
// rollback says, which pods are left, and in which order the calls that matter were made.
// The rest of the cluster (kubelet, scheduler, owners, the webhook's admission) is played
// between reconciles by `world`.
import type { V1Pod } from '@kubernetes/client-node';
import pino from 'pino';
import type { PodMigration, PodMigrationSpec } from '../../src/api/types';
import { DEFAULT_LIMITS, InFlight } from '../../src/controller/inflight';
import type { EventRecorder } from '../../src/controller/events';
import { Reconciler } from '../../src/controller/reconciler';
import { ApiError } from '../../src/errors';
import { paths } from '../../src/kube/client';
import { Metrics } from '../../src/metrics';
import { DEFAULT_STEER_OWNER_KINDS } from '../../src/migration/owners';
import { isTerminal } from '../../src/migration/status';
import { review } from '../../src/webhook/server';
import { FakeKube } from './fakeKube';

const NS = 'ns';
const log = pino({ level: 'silent' });
type Mode = 'Copy' | 'Surge' | 'Steer' | 'DeleteFirst';
type Outcome = 'ready' | 'unschedulable' | 'refused eviction' | 'source gone' | 'copy lost' | 'cancel';

const running = (node: string) => ({
  phase: 'Running',
  conditions: [
    { type: 'PodScheduled', status: 'True' },
    { type: 'Ready', status: 'True' },
  ],
  containerStatuses: [{ name: 'main', image: 'main', imageID: '', ready: true, restartCount: 0, state: { running: {} } }],
  hostIP: node,
});

/** The node a pod is pinned to (matchFields metadata.name In [node]), as the scheduler reads it. */
const pinnedNode = (pod: V1Pod) =>
  pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms?.[0]?.matchFields?.find(
    (f) => f.key === 'metadata.name',
  )?.values?.[0];

function setup(mode: Mode, outcome: Outcome) {
  const fake = new FakeKube();
  let t = Date.parse('2026-06-01T00:00:00Z');
  const clock = () => new Date(t);
  fake.now = clock;
  fake.put('/apis/apps/v1', {
    metadata: {},
    resources: [
      { name: 'replicasets', kind: 'ReplicaSet', namespaced: true },
      { name: 'statefulsets', kind: 'StatefulSet', namespaced: true },
    ],
  });
  for (const name of ['node-1', 'node-2']) {
    fake.put(paths.node(name), {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name },
      status: { conditions: [{ type: 'Ready', status: 'True' }], allocatable: { cpu: '16', memory: '64Gi', pods: '110' } },
    });
  }
  const owner: { apiVersion?: string; kind?: string; metadata: { name: string; uid: string } } | undefined =
    mode === 'Surge'
      ? fake.put(paths.replicaSet(NS, 'web-abc'), {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          metadata: { name: 'web-abc', namespace: NS },
          spec: { replicas: 1, selector: { matchLabels: { app: 'p', 'pod-template-hash': 'abc' } } },
          status: { replicas: 1, readyReplicas: 1, observedGeneration: 1 },
        })
      : mode === 'Steer'
        ? fake.put(`/apis/apps/v1/namespaces/${NS}/statefulsets/p`, {
            apiVersion: 'apps/v1',
            kind: 'StatefulSet',
            metadata: { name: 'p', namespace: NS },
            spec: { replicas: 1 },
          })
        : undefined;
  // A Steer source is a StatefulSet's pod: its name is its identity, p-0.
  const podName = mode === 'Steer' ? 'p-0' : 'p';
  const source = (): V1Pod => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName,
      namespace: NS,
      labels: { app: 'p', ...(mode === 'Surge' ? { 'pod-template-hash': 'abc' } : {}) },
      ...(owner
        ? {
            ownerReferences: [
              { apiVersion: owner.apiVersion!, kind: owner.kind!, name: owner.metadata.name, uid: owner.metadata.uid, controller: true },
            ],
          }
        : {}),
    },
    spec: { containers: [{ name: 'main', image: 'main', resources: { requests: { cpu: '500m', memory: '1Gi' } } }] },
  });
  fake.put(paths.pod(NS, podName), { ...source(), spec: { ...source().spec, nodeName: 'node-1' }, status: running('node-1') } as never);
  const spec: PodMigrationSpec = {
    podName,
    sourceNode: 'node-1',
    targetNode: 'node-2',
    metricsDelaySeconds: 0,
    timeoutSeconds: 120,
    readyTimeoutSeconds: 60,
  };
  if (mode === 'DeleteFirst') spec.strategy = 'DeleteBeforeCreate';
  const pmPath = paths.migration(NS, 'm');
  fake.put(pmPath, { apiVersion: 'migration.ai-storage.io/v1alpha1', kind: 'PodMigration', metadata: { name: 'm', namespace: NS }, spec });

  // The webhook is armed by owner UID (its matchConditions); admission runs the real review().
  const armed = new Map<string, string>();
  const arming = {
    arm: async (m: string, uid: string) => void armed.set(m, uid),
    disarm: async (m: string) => void armed.delete(m),
  };
  const migrations = {
    get: (name: string, ns?: string) => fake.at<PodMigration>(paths.migration(ns ?? NS, name)),
    list: () => fake.list<PodMigration>(paths.migrations(NS)),
  };
  fake.admitPod = async (pod) => {
    const ownerUid = pod.metadata?.ownerReferences?.find((r) => r.controller)?.uid;
    if (!ownerUid || ![...armed.values()].includes(ownerUid)) return pod;
    const answer = (await review({ cached: () => migrations.list(), live: async () => migrations.list() }, log, {
      request: { uid: 'r', operation: 'CREATE', namespace: NS, object: pod },
    })) as { response: { patch?: string } };
    return applyPatch(pod, answer.response.patch);
  };
  const events: { type: string; reason: string; message: string }[] = [];
  const reconciler = new Reconciler({
    client: fake.client,
    migrations,
    targetPods: {
      get: (name: string, ns?: string) => fake.at<V1Pod>(paths.pod(ns ?? NS, name)),
      list: () => fake.list<V1Pod>(paths.pods(NS), 'migration.ai-storage.io/migration'),
    },
    events: {
      record: (_pm: PodMigration, type: string, reason: string, message: string) => events.push({ type, reason, message }),
    } as unknown as EventRecorder,
    metrics: new Metrics({ inFlight: () => 0, queueDepth: () => 0, unfinishedWork: () => ({ seconds: 0, longest: 0 }) }),
    log,
    env: { steering: true, steerOwnerKinds: new Set(DEFAULT_STEER_OWNER_KINDS), arming },
    inFlight: new InFlight(DEFAULT_LIMITS, migrations, () => undefined),
    clock,
  });

  /** What the rest of the cluster does between two reconciles. */
  const world = async () => {
    for (const pod of fake.list<V1Pod>(paths.pods(NS))) {
      const path = paths.pod(NS, pod.metadata!.name!);
      const made = !!pod.metadata?.labels?.['migration.ai-storage.io/migration'];
      // The scheduler and the kubelet: a pod not yet placed goes to its pinned node.
      if (!pod.spec?.nodeName && !pod.metadata?.deletionTimestamp) {
        const node = pinnedNode(pod) ?? 'node-1';
        if (outcome === 'unschedulable' && node === 'node-2') {
          if (pod.status?.conditions?.length) continue; // said once, as the scheduler does
          fake.update(
            path,
            (p) =>
              (p.status = {
                phase: 'Pending',
                conditions: [
                  {
                    type: 'PodScheduled',
                    status: 'False',
                    reason: 'Unschedulable',
                    message: '0/2 nodes are available: 1 Insufficient cpu.',
                    lastTransitionTime: clock().toISOString(),
                  },
                ],
              }),
          );
        } else {
          fake.update(path, (p) => ((p.spec.nodeName = node), (p.status = running(node))));
        }
      }
      // Someone deletes the copy, or the source, while the copy starts (before step 4).
      if (outcome === 'copy lost' && made) fake.drop(path);
      if (
        outcome === 'source gone' &&
        mode !== 'Surge' &&
        fake.list(paths.pods(NS), 'migration.ai-storage.io/migration').length &&
        pod.metadata?.name === podName &&
        !made
      )
        fake.drop(path);
    }
    // The ReplicaSet: adopts an orphan its selector matches, and removes the surplus pod it ranks
    // first (the lowest deletion cost); scaled down while the copy starts, it removes the source.
    if (mode === 'Surge' && owner) {
      const mine = fake.list<V1Pod>(paths.pods(NS), 'app=p,pod-template-hash=abc');
      for (const p of mine.filter((x) => !x.metadata?.ownerReferences?.length)) {
        fake.update(
          paths.pod(NS, p.metadata!.name!),
          (x) =>
            (x.metadata.ownerReferences = [
              { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-abc', uid: owner.metadata.uid, controller: true },
            ]),
        );
      }
      const copyStarted = fake.list(paths.pods(NS), 'migration.ai-storage.io/migration').length > 0;
      const want = outcome === 'source gone' && copyStarted ? 0 : 1;
      const surplus = fake
        .list<V1Pod>(paths.pods(NS), 'app=p,pod-template-hash=abc')
        .sort(
          (a, b) =>
            Number(a.metadata?.annotations?.['controller.kubernetes.io/pod-deletion-cost'] ?? 0) -
            Number(b.metadata?.annotations?.['controller.kubernetes.io/pod-deletion-cost'] ?? 0),
        );
      for (const p of surplus.slice(0, Math.max(surplus.length - want, 0))) fake.drop(paths.pod(NS, p.metadata!.name!));
    }
    // The StatefulSet: recreates p-0 when it is gone, as its template says (the webhook may steer it).
    if (mode === 'Steer' && !fake.at(paths.pod(NS, podName))) {
      await fake.client.create(paths.pods(NS), source());
    }
  };

  /** Reconciles until the migration has ended and let go (or 200 rounds), the clock moving as asked. */
  const run = async (during?: (pm: PodMigration) => void) => {
    for (let i = 0; i < 200; i++) {
      const after = await reconciler
        .reconcile(`${NS}/m`)
        .catch((e: unknown) => (e instanceof ApiError && e.code === 409 ? 0 : Promise.reject(e)));
      const pm = fake.at<PodMigration>(pmPath)!;
      during?.(pm);
      if (isTerminal(pm.status?.phase) && !pm.metadata.finalizers?.length) return pm;
      await world();
      t += Math.min(Math.max(after ?? 1_000, 100), 5_000);
    }
    return fake.at<PodMigration>(pmPath)!;
  };
  return { fake, run, events, armed, pmPath, podName, advance: (ms: number) => (t += ms) };
}

function applyPatch(pod: V1Pod, patch?: string): V1Pod {
  if (!patch) return pod;
  type Tree = { [k: string]: Tree | unknown };
  const out = structuredClone(pod) as unknown as Tree;
  for (const op of JSON.parse(Buffer.from(patch, 'base64').toString()) as { path: string; value: unknown }[]) {
    const keys = op.path.split('/').slice(1);
    const parent = keys.slice(0, -1).reduce<Tree>((o, k) => (o[k] ??= {}) as Tree, out);
    parent[keys.at(-1)!] = op.value;
  }
  return out as unknown as V1Pod;
}

const rolledBack = (pm: PodMigration) => pm.status?.conditions?.find((c) => c.type === 'RolledBack');
const liveNames = (fake: FakeKube) =>
  fake
    .list<V1Pod>(paths.pods(NS))
    .filter((p) => !p.metadata?.deletionTimestamp)
    .map((p) => `${p.metadata!.name}@${p.spec?.nodeName ?? '-'}`)
    .sort();

describe.each([
  // mode, outcome, phase and reason it ends with, RolledBack (status/reason), pods left (name@node)
  ['Copy', 'ready', 'Completed', undefined, undefined, ['p-mig-*@node-2']],
  ['Copy', 'unschedulable', 'Failed', 'TargetPodUnschedulable', 'True/SourcePodRunning', ['p@node-1']],
  ['Copy', 'refused eviction', 'Failed', 'Timeout', 'True/SourcePodRunning', ['p@node-1']],
  ['Copy', 'source gone', 'Failed', 'SourcePodChanged', 'False/TargetPodKept', ['p-mig-*@node-2']],
  ['Copy', 'copy lost', 'Failed', 'TargetPodDeleted', 'True/SourcePodRunning', ['p@node-1']],
  ['Copy', 'cancel', 'Cancelled', 'CancelRequested', 'True/SourcePodRunning', ['p@node-1']],
  ['Surge', 'ready', 'Completed', undefined, undefined, ['p-mig-*@node-2']],
  ['Surge', 'unschedulable', 'Failed', 'TargetPodUnschedulable', 'True/SourcePodRunning', ['p@node-1']],
  ['Surge', 'source gone', 'Failed', 'SourcePodChanged', 'True/OwnerHoldsWorkload', []],
  ['Steer', 'ready', 'Completed', undefined, undefined, ['p-0@node-2']],
  ['Steer', 'unschedulable', 'Failed', 'TargetPodUnschedulable', 'False/OwnerRecreatedPod', ['p-0@node-1']],
  ['Steer', 'refused eviction', 'Failed', 'Timeout', 'True/SourcePodRunning', ['p-0@node-1']],
  ['Steer', 'cancel', 'Completed', undefined, undefined, ['p-0@node-2']],
  ['DeleteFirst', 'ready', 'Completed', undefined, undefined, ['p-mig-*@node-2']],
  ['DeleteFirst', 'unschedulable', 'Failed', 'TargetPodUnschedulable', 'True/SourcePodRestored', ['p@node-1']],
] as const)('%s, %s', (mode, outcome, phase, reason, rollback, left) => {
  it(`ends ${phase}${reason ? `/${reason}` : ''}${rollback ? `, RolledBack ${rollback}` : ''}, leaving ${left.join(', ') || 'no pod'}`, async () => {
    const c = setup(mode, outcome);
    if (outcome === 'refused eviction')
      c.fake.eviction = () => new ApiError(429, 'TooManyRequests', "Cannot evict pod as it would violate the pod's disruption budget.");
    let cancelled = false;
    const pm = await c.run((m) => {
      // Cancelled once there is something to undo: the copy made, or (Steer) the eviction asked.
      const started = mode === 'Steer' ? !!m.status?.sourcePod?.evictionRequestedAt : !!m.status?.targetPod;
      if (outcome === 'cancel' && started && !cancelled) {
        cancelled = true;
        c.fake.update(c.pmPath, (x) => (x.metadata.annotations = { 'migration.ai-storage.io/cancel': 'true' }));
      }
    });
    expect([pm.status!.phase, pm.status!.reason]).toEqual([phase, reason]);
    const rb = rolledBack(pm);
    expect(rb ? `${rb.status}/${rb.reason}` : undefined).toEqual(rollback);
    const pattern = (s: string) => new RegExp(`^${s.replace('*', '[a-f0-9]{5}')}$`);
    const names = liveNames(c.fake);
    expect(names.length).toBe(left.length);
    left.forEach((l, i) => expect(names[i]).toMatch(pattern(l)));
    // What the migration made is its own to the end, and nothing is left armed or claimed.
    expect(c.armed.size).toBe(0);
    for (const p of c.fake.list<V1Pod>(paths.pods(NS)))
      expect(p.metadata?.annotations?.['migration.ai-storage.io/claimed-by']).toBeUndefined();
    expect(pm.metadata.finalizers ?? []).toEqual([]);
  });
});

describe('the order of what matters', () => {
  it('Copy: the source is evicted once, after its copy is Ready, and only then', async () => {
    const c = setup('Copy', 'ready');
    await c.run();
    const verbs = c.fake.calls
      .filter((x) => x.verb === 'create' || x.verb === 'delete')
      .map((x) => `${x.verb} ${x.path.replace(/^.*\/namespaces\/ns\//, '')}`);
    expect(verbs.filter((v) => v.includes('eviction') || v.startsWith('create pods'))).toEqual(['create pods', 'create pods/p/eviction']);
  });

  it('Steer: arms the webhook, proves it with a dry run, then evicts; disarmed at the end', async () => {
    const c = setup('Steer', 'ready');
    const armedAtEviction: number[] = [];
    const evict = c.fake.eviction;
    c.fake.eviction = (pod) => (armedAtEviction.push(c.armed.size), evict(pod));
    const pm = await c.run();
    const creates = c.fake.calls.filter((x) => x.verb === 'create' && x.path.includes('/pods'));
    expect(creates.map((x) => (x.dryRun ? 'dry run' : x.path.endsWith('/eviction') ? 'eviction' : 'create'))).toEqual([
      'dry run',
      'eviction',
      'create',
    ]);
    expect(armedAtEviction).toEqual([1]);
    expect(pm.status!.targetPod!.name).toBe('p-0');
    // It was admitted with the PriorityClass of its priority that never preempts.
    expect(c.fake.at<V1Pod>(paths.pod(NS, 'p-0'))!.spec!.priorityClassName).toBe('podmigration-never-preempts-0');
    expect(
      c.fake.at<{ preemptionPolicy: string }>('/apis/scheduling.k8s.io/v1/priorityclasses/podmigration-never-preempts-0')!.preemptionPolicy,
    ).toBe('Never');
  });

  it('Copy: never waits on a budget past the deadline: it rolls back at timeoutSeconds', async () => {
    const c = setup('Copy', 'refused eviction');
    c.fake.eviction = () => new ApiError(429, 'TooManyRequests', 'blocked');
    const pm = await c.run();
    const ended = Date.parse(pm.status!.completionTime!) - Date.parse(pm.status!.startTime!);
    expect(ended).toBeGreaterThanOrEqual(120_000);
    expect(ended).toBeLessThan(130_000);
  });
});
