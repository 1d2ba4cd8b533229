// The rest of the refusal catalogue: reasons that need a particular sequence of events.
import { createHash } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigration } from '../src/api/types';
import { paths } from '../src/kube/client';
import {
  TRAINING_CONTAINERS,
  createRunningPod,
  eventually,
  getPod,
  k8s,
  migration,
  operatorNamespace,
  pmPath,
  podManifest,
  podsOfMigration,
  waitForPhase,
} from './helpers';

const { ns, operator } = operatorNamespace('catalogue', { start: false });

it('refuses a pod that is being deleted (PodTerminating)', async () => {
  const manifest = podManifest(ns, 'leaving', 'node-1', TRAINING_CONTAINERS.slice(0, 1));
  manifest.metadata!.finalizers = ['test.podmigration/hold'];
  await createRunningPod(manifest);
  await k8s.delete(paths.pod(ns, 'leaving'));
  operator.start();
  await k8s.create(pmPath(ns), migration(ns, 'move-leaving', { podName: 'leaving', sourceNode: 'node-1', targetNode: 'node-2' }));
  const pm = await waitForPhase(ns, 'move-leaving', ['Failed', 'Completed']);
  expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'PodTerminating' });
  expect(await podsOfMigration(ns, 'move-leaving')).toEqual([]);
  await k8s.mergePatch(paths.pod(ns, 'leaving'), { metadata: { finalizers: null } });
  await operator.stop('SIGTERM');
});

it('refuses to adopt a pod of its target name that it did not make (TargetNameConflict)', async () => {
  await createRunningPod(podManifest(ns, 'squatted', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
  // Created while the operator is down, so the name it will use can be taken first.
  const pm = await k8s.create<PodMigration>(
    pmPath(ns),
    migration(ns, 'move-squatted', { podName: 'squatted', sourceNode: 'node-1', targetNode: 'node-2' }),
  );
  const name = `squatted-mig-${createHash('sha256').update(pm.metadata.uid).digest('hex').slice(0, 5)}`;
  const squatter = await createRunningPod(podManifest(ns, name, 'node-3', TRAINING_CONTAINERS.slice(0, 1)));
  operator.start();
  const done = await waitForPhase(ns, 'move-squatted', ['Failed', 'Completed']);
  expect(done.status).toMatchObject({ phase: 'Failed', reason: 'TargetNameConflict' });
  const still = await getPod(ns, name);
  expect(still!.metadata!.uid).toBe(squatter.metadata!.uid); // not ours: not touched
  expect((await getPod(ns, 'squatted'))!.metadata!.deletionTimestamp).toBeUndefined();
});

it('fails with TargetPodDeleted when someone deletes the new pod before it is Ready', async () => {
  const source = await createRunningPod(
    podManifest(ns, 'interrupted', 'node-1', TRAINING_CONTAINERS.slice(0, 1), { 'kwok.podmigration.test/unready-on': 'node-2' }),
  );
  await k8s.create(pmPath(ns), migration(ns, 'move-interrupted', { podName: 'interrupted', sourceNode: 'node-1', targetNode: 'node-2' }));
  const waiting = await waitForPhase(ns, 'move-interrupted', ['CreatingTargetPod']);
  const target = await eventually('target pod recorded', async () => {
    const pm = await k8s.get<PodMigration>(pmPath(ns, 'move-interrupted'));
    return pm.status?.targetPod?.uid ? pm.status.targetPod : undefined;
  });
  expect(waiting.status!.phase).toBe('CreatingTargetPod');
  await k8s.delete(paths.pod(ns, target.name));
  const pm = await waitForPhase(ns, 'move-interrupted', ['Failed', 'Completed']);
  expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'TargetPodDeleted' });
  // Not replaced behind the user's back, and the source is untouched.
  expect(
    (
      await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { labelSelector: 'migration.ai-storage.io/migration=move-interrupted' })
    ).items.filter((p) => !p.metadata!.deletionTimestamp),
  ).toEqual([]);
  expect((await getPod(ns, 'interrupted'))!.metadata!.uid).toBe(source.metadata!.uid);
});
