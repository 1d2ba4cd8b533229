// Surge mode on a hostile cluster: the ReplicaSet removes the source itself while the copy
// is still starting (a scale-down, a rollout, the Deployment deleted), and a ReplicaSet that
// adopts the copy but keeps the source while a budget blocks its eviction. With the real
// ReplicaSet, Deployment and disruption controllers and kube-scheduler.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigration } from '../src/api/types';
import { paths } from '../src/kube/client';
import { CLUSTER_DIR } from './cluster/provider';
import {
  env,
  eventually,
  followPods,
  getMigration,
  getPod,
  k8s,
  migration,
  operatorNamespace,
  pmPath,
  podsOfMigration,
  waitForPhase,
} from './helpers';

const { ns } = operatorNamespace('surge');
const NODES = ['node-1', 'node-2', 'node-3'];
const MIGRATION_LABEL = 'migration.ai-storage.io/migration';
const ready = (p: V1Pod) =>
  !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const live = (p: V1Pod) => !p.metadata?.deletionTimestamp;
const podsOf = async (app: string) => (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { labelSelector: `app=${app}` })).items;
const deployments = `/apis/apps/v1/namespaces/${ns}/deployments`;
const rolledBack = (pm: PodMigration) => pm.status?.conditions?.find((c) => c.type === 'RolledBack');

async function deployment(name: string, replicas: number): Promise<V1Pod[]> {
  await k8s.create(deployments, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'server', image: 'registry.example/server:1', resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
        },
      },
    },
  });
  const pods = await eventually(`${name}: ${replicas} Ready`, async () => {
    const pods = (await podsOf(name)).filter(live);
    return pods.length === replicas && pods.every(ready) ? pods : undefined;
  });
  // And its ReplicaSet's status says so (the tests that stop kube-controller-manager freeze it).
  await eventually(`${name}: ReplicaSet status ${replicas} Ready`, async () => {
    const sets = (
      await k8s.get<{ items: { status?: { readyReplicas?: number; observedGeneration?: number }; metadata: { generation?: number } }[] }>(
        `/apis/apps/v1/namespaces/${ns}/replicasets`,
        { labelSelector: `app=${name}` },
      )
    ).items;
    return sets.length === 1 &&
      sets[0].status?.readyReplicas === replicas &&
      (sets[0].status.observedGeneration ?? 0) >= (sets[0].metadata.generation ?? 0)
      ? true
      : undefined;
  });
  return pods;
}

describe('the ReplicaSet removes the source while the copy starts', () => {
  it.each([
    ['is scaled to 0', (d: string) => k8s.mergePatch(`${deployments}/${d}`, { spec: { replicas: 0 } })],
    [
      'rolls out a new template',
      (d: string) => k8s.mergePatch(`${deployments}/${d}`, { spec: { template: { metadata: { annotations: { rollout: '2' } } } } }),
    ],
    ['is deleted', (d: string) => k8s.delete(`${deployments}/${d}`)],
  ])('the Deployment %s: the copy it never adopted is removed at once, and the status says why', async (_what, act) => {
    const name = `web-${_what.split(' ')[1].replace(/\W/g, '')}`;
    const [source] = await deployment(name, 1);
    const from = source.spec!.nodeName!;
    const to = NODES.find((n) => n !== from)!;
    // The copy never becomes Ready on the target (an AI pod loading its model for minutes).
    await k8s.mergePatch(paths.pod(ns, source.metadata!.name!), { metadata: { annotations: { 'kwok.podmigration.test/unready-on': to } } });
    const pmName = `move-${name}`;
    await k8s.create(
      pmPath(ns),
      migration(ns, pmName, { podName: source.metadata!.name!, sourceNode: from, targetNode: to, readyTimeoutSeconds: 300 }),
    );
    await eventually('copy made', async () => ((await podsOfMigration(ns, pmName)).length === 1 ? true : undefined));
    await act(name);
    const pm = await waitForPhase(ns, pmName, ['Failed', 'Completed'], 60_000);
    expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'SourcePodChanged', step: 3 });
    expect(pm.status!.message).toMatch(/removed before the copy was handed over, by ReplicaSet/);
    await eventually('copy gone', async () => ((await podsOfMigration(ns, pmName)).filter(live).length === 0 ? true : undefined), 30_000);
    const rb = await eventually('RolledBack', async () => rolledBack(await getMigration(ns, pmName)));
    expect(rb).toMatchObject({ status: 'True', reason: 'OwnerHoldsWorkload' });
    expect(rb.message).toMatch(
      new RegExp(`removed pod ${name}-[a-z0-9-]+-mig-[a-f0-9]+; source pod ${source.metadata!.name} was removed by ReplicaSet`),
    );
  });
});

describe('a hand-over the ReplicaSet never completes', () => {
  const pidFile = join(CLUSTER_DIR, 'kube-controller-manager.pid');

  it('ends when a policy refuses to relabel the copy: the copy is removed, the source runs on', async () => {
    // An admission policy that refuses relabelling pods (as Kyverno or Gatekeeper rules may).
    const name = `no-relabel-${ns}`;
    const vap = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies';
    const binding = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings';
    await k8s.create(vap, {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods'] }] },
        validations: [{ expression: 'object.metadata.labels == oldObject.metadata.labels', message: 'pod labels do not change here' }],
      },
    });
    await k8s.create(binding, {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name },
      spec: {
        policyName: name,
        validationActions: ['Deny'],
        matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } },
      },
    });
    try {
      // In force once the API server refuses a relabel (policies take a moment to load).
      await k8s.create(paths.pods(ns), {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'probe-relabel', labels: { a: '1' } },
        spec: { containers: [{ name: 'c', image: 'c' }] },
      });
      await eventually('the policy in force', async () =>
        k8s.mergePatch(paths.pod(ns, 'probe-relabel'), { metadata: { labels: { a: String(Date.now()) } } }).then(
          () => undefined,
          () => true,
        ),
      );
      const [source] = await deployment('api', 2);
      const from = source.spec!.nodeName!;
      const pm = await (async () => {
        await k8s.create(
          pmPath(ns),
          migration(ns, 'move-api', {
            podName: source.metadata!.name!,
            sourceNode: from,
            targetNode: NODES.find((n) => n !== from)!,
            metricsDelaySeconds: 0,
          }),
        );
        return waitForPhase(ns, 'move-api', ['Failed', 'Completed'], 60_000);
      })();
      expect([pm.status!.phase, pm.status!.reason]).toEqual(['Failed', 'TargetPodRejected']);
      expect(pm.status!.message).toMatch(
        /refused to give pod .* the labels of ReplicaSet api-[a-z0-9]+ \(pod-template-hash\), so it cannot adopt it/,
      );
      expect(await eventually('RolledBack', async () => rolledBack(await getMigration(ns, 'move-api')))).toMatchObject({
        status: 'True',
        reason: 'SourcePodRunning',
      });
      expect((await podsOfMigration(ns, 'move-api')).filter(live)).toEqual([]);
      const after = (await getPod(ns, source.metadata!.name!))!;
      expect([live(after), after.metadata!.annotations?.['controller.kubernetes.io/pod-deletion-cost']]).toEqual([true, undefined]);
    } finally {
      await k8s.delete(`${binding}/${name}`).catch(() => undefined);
      await k8s.delete(`${vap}/${name}`).catch(() => undefined);
      // No longer in force once a relabel passes again.
      await eventually('the policy gone', async () =>
        k8s.mergePatch(paths.pod(ns, 'probe-relabel'), { metadata: { labels: { a: String(Date.now()) } } }).then(
          () => true,
          () => undefined,
        ),
      );
    }
  });

  it('never calls the source moved when it went before the ReplicaSet adopted the copy', async () => {
    if (!env.started)
      throw new Error("this test stops the local control plane's kube-controller-manager: run it on the local control plane");
    const kcm = Number(readFileSync(pidFile, 'utf8'));
    const [source] = await deployment('late', 1);
    const from = source.spec!.nodeName!;
    process.kill(kcm, 'SIGSTOP');
    let stopped = true;
    try {
      await k8s.create(
        pmPath(ns),
        migration(ns, 'move-late', {
          podName: source.metadata!.name!,
          sourceNode: from,
          targetNode: NODES.find((n) => n !== from)!,
          metricsDelaySeconds: 0,
        }),
      );
      // Labelled, not adopted (the ReplicaSet controller is stopped); then the source goes.
      await eventually('copy labelled', async () =>
        (await podsOfMigration(ns, 'move-late')).some((p) => p.metadata?.labels?.['pod-template-hash']) ? true : undefined,
      );
      await k8s.delete(paths.pod(ns, source.metadata!.name!));
      const pm = await waitForPhase(ns, 'move-late', ['Failed', 'Completed'], 60_000);
      expect([pm.status!.phase, pm.status!.reason]).toEqual(['Failed', 'SourcePodChanged']);
      expect(pm.status!.message).toMatch(/was removed before ReplicaSet late-[a-z0-9]+ adopted pod/);
      await eventually(
        'copy gone',
        async () => ((await podsOfMigration(ns, 'move-late')).filter(live).length === 0 ? true : undefined),
        30_000,
      );
    } finally {
      if (stopped) process.kill(kcm, 'SIGCONT');
      stopped = false;
    }
    await eventually(
      'the ReplicaSet makes up its count',
      async () => ((await podsOf('late')).filter(ready).length === 1 ? true : undefined),
      60_000,
    );
  });
});

describe('a ReplicaSet that adopts the copy but keeps the source', () => {
  // The ReplicaSet removes a pod that is not Ready before the one with the lowest deletion
  // cost. The test stops kube-controller-manager while the copy is handed over, marks the
  // other replica not Ready, and lets it go on: the ReplicaSet adopts the copy and removes
  // that replica; the source stays, and a budget blocks its eviction.
  const pidFile = join(CLUSTER_DIR, 'kube-controller-manager.pid');

  it("ends at the deadline, keeps the adopted copy as the ReplicaSet's, and releases the source", async () => {
    if (!env.started)
      throw new Error("this test stops the local control plane's kube-controller-manager: run it on the local control plane");
    const kcm = Number(readFileSync(pidFile, 'utf8'));
    const pods = await deployment('keeper', 2);
    const [source, other] = pods;
    // A deletion cost of the user's own, which the hand-over replaces and the rollback puts back.
    await k8s.mergePatch(paths.pod(ns, source.metadata!.name!), {
      metadata: { annotations: { 'controller.kubernetes.io/pod-deletion-cost': '100' } },
    });
    const from = source.spec!.nodeName!;
    const to = NODES.find((n) => n !== from)!;
    await k8s.create(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`, {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'keeper' },
      spec: { selector: { matchLabels: { app: 'keeper' } }, minAvailable: 2 },
    });
    await eventually('budget observed', async () =>
      (await k8s.get<{ status?: { observedGeneration?: number } }>(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/keeper`)).status
        ?.observedGeneration
        ? true
        : undefined,
    );
    process.kill(kcm, 'SIGSTOP');
    let stopped = true;
    try {
      // Not Ready from now on; the stopped controllers do not see it until they resume, by
      // when the copy has been handed over (the ReplicaSet's status still says 2 Ready).
      const o = (await getPod(ns, other.metadata!.name!))!;
      await k8s.replace(`${paths.pod(ns, o.metadata!.name!)}/status`, {
        ...o,
        status: { ...o.status, conditions: o.status!.conditions!.map((c) => (c.type === 'Ready' ? { ...c, status: 'False' } : c)) },
      });
      await k8s.create(
        pmPath(ns),
        migration(ns, 'move-keeper', {
          podName: source.metadata!.name!,
          sourceNode: from,
          targetNode: to,
          timeoutSeconds: 40,
          metricsDelaySeconds: 0,
        }),
      );
      const copy = await eventually('copy given the ReplicaSet labels', async () =>
        (await podsOfMigration(ns, 'move-keeper')).find((p) => p.metadata?.labels?.['pod-template-hash']),
      );
      process.kill(kcm, 'SIGCONT');
      stopped = false;
      await eventually(
        'copy adopted',
        async () => ((await getPod(ns, copy.metadata!.name!))?.metadata?.ownerReferences?.some((r) => r.controller) ? true : undefined),
        30_000,
      );
      const pm = await waitForPhase(ns, 'move-keeper', ['Failed', 'Completed'], 90_000);
      expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'Timeout', step: 4 });
      const rb = await eventually('RolledBack', async () => rolledBack(await getMigration(ns, 'move-keeper')));
      expect(rb).toMatchObject({ status: 'False', reason: 'TargetPodKept' });
      expect(rb.message).toMatch(/ReplicaSet keeper-[a-z0-9]+ adopted it, it is its pod now; source pod .* still runs/);
      // The source runs on, released, with its own deletion cost again; the Deployment has its two
      // Ready pods, the copy among them.
      const after = (await getPod(ns, source.metadata!.name!))!;
      expect([
        live(after),
        after.metadata!.annotations?.['migration.ai-storage.io/claimed-by'],
        after.metadata!.annotations?.['controller.kubernetes.io/pod-deletion-cost'],
      ]).toEqual([true, undefined, '100']);
      const running = await eventually('2 Ready replicas', async () => {
        const all = (await podsOf('keeper')).filter(live);
        return all.length === 2 && all.every(ready) ? all : undefined;
      });
      expect(running.map((p) => p.metadata!.name).sort()).toEqual([source.metadata!.name, copy.metadata!.name].sort());
      expect(running.find((p) => p.metadata!.name === copy.metadata!.name)!.metadata!.labels![MIGRATION_LABEL]).toBe('move-keeper');
    } finally {
      if (stopped) process.kill(kcm, 'SIGCONT');
    }
  });
});

describe('a ReplicaSet that removes another Ready pod', () => {
  it('never evicts a Ready source that the ReplicaSet kept when that would leave it short of Ready replicas', async () => {
    const pods = await deployment('cheap', 3);
    const source = pods[0];
    // Someone else's pod already has the lowest cost, and shares the target node with the copy
    // (so it outranks the source, which ties on cost): the ReplicaSet removes it, not the source.
    const other = pods.find((p) => p.spec!.nodeName !== source.spec!.nodeName)!;
    expect(other).toBeDefined();
    await k8s.mergePatch(paths.pod(ns, other.metadata!.name!), {
      metadata: { annotations: { 'controller.kubernetes.io/pod-deletion-cost': '-2147483648' } },
    });
    let fewest = 3;
    const follow = await followPods(
      ns,
      (all) => {
        if (all.length) fewest = Math.min(fewest, all.filter(ready).length);
      },
      'app=cheap',
    );
    try {
      await k8s.create(
        pmPath(ns),
        migration(ns, 'move-cheap', {
          podName: source.metadata!.name!,
          sourceNode: source.spec!.nodeName!,
          targetNode: other.spec!.nodeName!,
          timeoutSeconds: 35,
          metricsDelaySeconds: 0,
        }),
      );
      const pm = await waitForPhase(ns, 'move-cheap', ['Failed', 'Completed'], 90_000);
      expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'Timeout', step: 4 });
      expect(await getPod(ns, source.metadata!.name!)).toMatchObject({ metadata: { name: source.metadata!.name } });
      expect(live((await getPod(ns, source.metadata!.name!))!)).toBe(true);
      await eventually('3 Ready replicas', async () => ((await podsOf('cheap')).filter(ready).length === 3 ? true : undefined));
    } finally {
      await follow.stop();
    }
    // Never fewer Ready pods than the Deployment's replicas, at any change.
    expect([fewest, follow.changes() > 3]).toEqual([3, true]);
  }, 120_000);
});
