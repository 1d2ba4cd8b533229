// Pods that controllers own, with kube-controller-manager's real ReplicaSet, Deployment and
// DaemonSet controllers and the real kube-scheduler: a Deployment's pod moves without
// downtime (Surge), a DaemonSet's pod is refused, and an owner can opt a pod out.
import type { V1Pod } from '@kubernetes/client-node';
import { paths } from '../src/kube/client';
import {
  TRAINING_CONTAINERS,
  createRunningPod,
  eventually,
  getPod,
  k8s,
  kubectl,
  migration,
  operatorNamespace,
  pmPath,
  podManifest,
  podsOfMigration,
  sleep,
  waitForPhase,
  followPods,
} from './helpers';

const { ns } = operatorNamespace('owners');

const podsOf = async (app: string) => (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { labelSelector: `app=${app}` })).items;
const ready = (p: V1Pod) =>
  !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const template = (app: string) => ({
  metadata: { labels: { app } },
  spec: {
    terminationGracePeriodSeconds: 1,
    containers: [{ name: 'server', image: 'registry.example/server:1', resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
  },
});

it('moves a Deployment pod with no downtime: the ReplicaSet adopts the Ready copy and removes the source', async () => {
  const deployment = await k8s.create<{ metadata: { generation: number } }>(`/apis/apps/v1/namespaces/${ns}/deployments`, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'inference' },
    spec: { replicas: 3, selector: { matchLabels: { app: 'inference' } }, template: template('inference') },
  });
  const pods = await eventually('3 Ready replicas', async () => {
    const all = await podsOf('inference');
    return all.length === 3 && all.every(ready) ? all : undefined;
  });
  const source = pods[0];
  const from = source.spec!.nodeName!;
  const to = ['node-1', 'node-2', 'node-3'].find((n) => n !== from)!;
  const rsName = source.metadata!.ownerReferences![0].name;

  // At every change the API server makes: never fewer than 3 Ready replicas.
  let fewest = Infinity;
  const follow = await followPods(ns, (all) => (fewest = Math.min(fewest, all.filter(ready).length)), 'app=inference');
  await k8s.create(
    pmPath(ns),
    migration(ns, 'move-inference', { podName: source.metadata!.name!, sourceNode: from, targetNode: to, metricsDelaySeconds: 0 }),
  );
  const pm = await waitForPhase(ns, 'move-inference', ['Completed', 'Failed'], 90_000);
  await follow.stop();
  expect(pm.status).toMatchObject({ phase: 'Completed', mode: 'Surge', surge: { replicaSet: { name: rsName } } });
  expect(follow.changes()).toBeGreaterThanOrEqual(3); // the copy's creation and adoption, the source's removal, at least
  expect(fewest).toBeGreaterThanOrEqual(3);

  const [copy] = await podsOfMigration(ns, 'move-inference');
  expect(copy.spec!.nodeName).toBe(to);
  expect(copy.metadata!.ownerReferences).toEqual([expect.objectContaining({ kind: 'ReplicaSet', name: rsName, controller: true })]);
  expect(copy.metadata!.labels!['pod-template-hash']).toBe(source.metadata!.labels!['pod-template-hash']);
  expect(await getPod(ns, source.metadata!.name!)).toBeUndefined();
  await sleep(2_000); // the ReplicaSet settles: exactly its replicas, the copy among them
  const after = await podsOf('inference');
  expect(
    after
      .filter((p) => !p.metadata!.deletionTimestamp)
      .map((p) => p.metadata!.name)
      .sort(),
  ).toEqual([...pods.slice(1).map((p) => p.metadata!.name), copy.metadata!.name].sort());
  // The Deployment is never written: same generation, same replica count.
  const d = await k8s.get<{ metadata: { generation: number }; spec: { replicas: number } }>(
    `/apis/apps/v1/namespaces/${ns}/deployments/inference`,
  );
  expect([d.metadata.generation, d.spec.replicas]).toEqual([deployment.metadata.generation, 3]);
  // kubectl get -o wide shows the mode.
  expect(kubectl(['get', 'podmigration', 'move-inference', '-n', ns, '-o', 'wide']).stdout).toMatch(/MODE[\s\S]*Surge/);
});

it("refuses a DaemonSet's pod (it belongs to its node), touching nothing", async () => {
  await k8s.create(`/apis/apps/v1/namespaces/${ns}/daemonsets`, {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'agent' },
    spec: { selector: { matchLabels: { app: 'agent' } }, template: template('agent') },
  });
  const pod = await eventually('agent pod on node-1', async () =>
    (await podsOf('agent')).find((p) => p.spec?.nodeName === 'node-1' && ready(p)),
  );
  await k8s.create(pmPath(ns), migration(ns, 'move-agent', { podName: pod.metadata!.name!, sourceNode: 'node-1', targetNode: 'node-2' }));
  const pm = await waitForPhase(ns, 'move-agent', ['Failed', 'Completed']);
  expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'NodeBoundPod', step: 1 });
  expect(pm.status!.message).toMatch(/DaemonSet agent's pod for node-1: it belongs to that node/);
  expect(await podsOfMigration(ns, 'move-agent')).toEqual([]);
  const after = await getPod(ns, pod.metadata!.name!);
  expect(after!.metadata!.uid).toBe(pod.metadata!.uid);
  expect(after!.metadata!.annotations?.['migration.ai-storage.io/claimed-by']).toBeUndefined();
});

it('refuses a pod whose owner opted it out', async () => {
  const pod = await createRunningPod(
    podManifest(ns, 'pinned', 'node-1', TRAINING_CONTAINERS.slice(0, 1), { 'migration.ai-storage.io/migratable': 'false' }),
  );
  await k8s.create(pmPath(ns), migration(ns, 'move-pinned', { podName: 'pinned', sourceNode: 'node-1', targetNode: 'node-2' }));
  const pm = await waitForPhase(ns, 'move-pinned', ['Failed', 'Completed']);
  expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'MigrationOptedOut' });
  expect((await getPod(ns, 'pinned'))!.metadata!.uid).toBe(pod.metadata!.uid);
});
