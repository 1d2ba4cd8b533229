// spec.strategy DeleteBeforeCreate: pods with ReadWriteOnce claims move, with downtime;
// if the copy fails, it is removed and the source is recreated on its node.
import type { V1Pod } from '@kubernetes/client-node';
import { paths } from '../src/kube/client';
import {
  TRAINING_CONTAINERS,
  createRunningPod,
  eventsOf,
  eventually,
  getPod,
  k8s,
  migration,
  operatorNamespace,
  pmPath,
  podManifest,
  podsOfMigration,
  waitForPhase,
  followPods,
} from './helpers';

const { ns } = operatorNamespace('strategy');

async function rwoPod(name: string, annotations: Record<string, string> = {}): Promise<V1Pod> {
  await k8s.create(paths.pvcs(ns), {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: `${name}-data` },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  });
  const manifest = podManifest(ns, name, 'node-1', TRAINING_CONTAINERS.slice(0, 2), annotations);
  manifest.spec!.volumes = [{ name: 'data', persistentVolumeClaim: { claimName: `${name}-data` } }];
  manifest.spec!.containers[0].volumeMounts = [{ name: 'data', mountPath: '/data' }];
  return createRunningPod(manifest);
}

it('moves a pod with a ReadWriteOnce claim, never running source and copy at once', async () => {
  const source = await rwoPod('rwo-move');
  await k8s.create(
    pmPath(ns),
    migration(ns, 'move-rwo', {
      podName: 'rwo-move',
      sourceNode: 'node-1',
      targetNode: 'node-2',
      strategy: 'DeleteBeforeCreate',
      metricsDelaySeconds: 0,
    }),
  );
  // At every change the API server makes: the claim is never used by two live pods at once.
  let most = 0;
  const follow = await followPods(ns, (pods) => {
    const users = pods.filter(
      (p) => !p.metadata!.deletionTimestamp && p.spec!.volumes?.some((v) => v.persistentVolumeClaim?.claimName === 'rwo-move-data'),
    );
    most = Math.max(most, users.length);
  });
  const pm = await waitForPhase(ns, 'move-rwo', ['Completed', 'Failed']);
  await eventually('the copy seen Running', async () =>
    (await podsOfMigration(ns, 'move-rwo'))[0]?.status?.phase === 'Running' ? true : undefined,
  );
  await follow.stop();
  expect(pm.status!.phase).toBe('Completed');
  expect(follow.changes()).toBeGreaterThanOrEqual(3); // the source's deletion, the copy's creation and start, at least
  expect(most).toBe(1);
  const [target] = await podsOfMigration(ns, 'move-rwo');
  expect(target.spec!.nodeName).toBe('node-2');
  expect(target.spec!.volumes).toContainEqual({ name: 'data', persistentVolumeClaim: { claimName: 'rwo-move-data' } });
  const gone = await getPod(ns, 'rwo-move');
  expect(gone?.metadata?.uid === source.metadata!.uid).toBe(false);
});

it('recreates the source on its node when the copy never becomes Ready', async () => {
  const source = await rwoPod('rwo-back', { 'kwok.podmigration.test/unready-on': 'node-2' });
  await k8s.create(
    pmPath(ns),
    migration(ns, 'move-back', {
      podName: 'rwo-back',
      sourceNode: 'node-1',
      targetNode: 'node-2',
      strategy: 'DeleteBeforeCreate',
      readyTimeoutSeconds: 3,
    }),
  );
  const pm = await waitForPhase(ns, 'move-back', ['Failed', 'Completed'], 60_000);
  expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'TargetPodNotReady' });
  const restored = await eventually(
    'source recreated and Running',
    async () => {
      const p = await getPod(ns, 'rwo-back');
      return p && p.metadata!.uid !== source.metadata!.uid && p.status?.phase === 'Running' ? p : undefined;
    },
    30_000,
  );
  expect(restored.spec!.nodeName).toBe('node-1');
  expect(restored.spec!.containers.map((c) => c.name)).toEqual(['trainer', 'exporter']);
  expect(restored.spec!.volumes).toContainEqual({ name: 'data', persistentVolumeClaim: { claimName: 'rwo-back-data' } });
  expect(restored.metadata!.labels!['migration.ai-storage.io/migration']).toBeUndefined();
  await eventually('copy removed', async () => ((await podsOfMigration(ns, 'move-back')).length === 0 ? true : undefined), 30_000);
  await eventually(
    'SourcePodRestored event',
    async () => ((await eventsOf(ns, 'move-back')).some((e) => e.reason === 'SourcePodRestored') ? true : undefined),
    10_000,
  );
});

it('still refuses ReadWriteOnce claims under the default strategy', async () => {
  await rwoPod('rwo-default');
  await k8s.create(pmPath(ns), migration(ns, 'move-default', { podName: 'rwo-default', sourceNode: 'node-1', targetNode: 'node-2' }));
  const pm = await waitForPhase(ns, 'move-default', ['Failed', 'Completed']);
  expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'ReadWriteOnceVolume' });
  expect(pm.status!.message).toMatch(/DeleteBeforeCreate/);
});
