// Cancellation: deleting a PodMigration before the source is removed aborts it cleanly
// (finalizer); the cancel annotation does the same and keeps the record as Cancelled.
import {
  TRAINING_CONTAINERS,
  createRunningPod,
  eventually,
  getMigration,
  getPod,
  k8s,
  kubectl,
  migration,
  operatorNamespace,
  pmPath,
  podManifest,
  podsOfMigration,
  waitForPhase,
} from './helpers';

const { ns } = operatorNamespace('cancel');
const FINALIZER = 'migration.ai-storage.io/cleanup';

/** A migration stuck waiting for its new pod (never Ready on node-2), with that pod made. */
async function stuck(podName: string) {
  const source = await createRunningPod(podManifest(ns, podName, 'node-1', TRAINING_CONTAINERS.slice(0, 2), { 'kwok.podmigration.test/unready-on': 'node-2' }));
  const name = `move-${podName}`;
  await k8s.create(pmPath(ns), migration(ns, name, { podName, sourceNode: 'node-1', targetNode: 'node-2' }));
  const pm = await waitForPhase(ns, name, ['CreatingTargetPod']);
  expect(pm.metadata.finalizers).toContain(FINALIZER);
  await eventually('target pod exists', async () => ((await podsOfMigration(ns, name)).length === 1 ? true : undefined));
  return { name, sourceUid: source.metadata!.uid! };
}

async function expectSourceIntact(podName: string, uid: string) {
  const source = await getPod(ns, podName);
  expect(source!.metadata!.uid).toBe(uid);
  expect(source!.metadata!.deletionTimestamp).toBeUndefined();
}

it('deleting the record before step 4 removes the new pod and leaves the source', async () => {
  const { name, sourceUid } = await stuck('deleted');
  const r = kubectl(['delete', 'podmigration', name, '-n', ns, '--timeout=60s']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0); // returns once the finalizer is released and the record is gone
  expect(kubectl(['get', 'podmigration', name, '-n', ns]).stderr).toMatch(/NotFound/);
  await eventually('target pod removed', async () => ((await podsOfMigration(ns, name)).length === 0 ? true : undefined), 30_000);
  await expectSourceIntact('deleted', sourceUid);
});

it('the cancel annotation ends in Cancelled, removes the new pod and keeps the record', async () => {
  const { name, sourceUid } = await stuck('annotated');
  expect(kubectl(['annotate', 'podmigration', name, '-n', ns, 'migration.ai-storage.io/cancel=true']).code).toBe(0);
  const pm = await waitForPhase(ns, name, ['Cancelled', 'Failed', 'Completed']);
  expect(pm.status).toMatchObject({ phase: 'Cancelled', reason: 'CancelRequested' });
  const conditions = Object.fromEntries(pm.status!.conditions!.map((c) => [c.type, c.status]));
  expect(conditions).toMatchObject({ Ready: 'False', Reconciling: 'False', Stalled: 'True' });
  await eventually('target pod removed', async () => ((await podsOfMigration(ns, name)).length === 0 ? true : undefined), 30_000);
  await expectSourceIntact('annotated', sourceUid);
  // Nothing left to clean up: the finalizer is released and the record stays, saying what was undone.
  await eventually('finalizer released', async () => ((await getMigration(ns, name)).metadata.finalizers?.includes(FINALIZER) ? undefined : true));
  const done = await getMigration(ns, name);
  expect(done.status!.conditions!.find((c) => c.type === 'RolledBack')).toMatchObject({ status: 'True', reason: 'SourcePodRunning' });
  expect(done.status!.message).toMatch(/^cancelled by the migration\.ai-storage\.io\/cancel annotation; removed pod annotated-mig-\w+; source pod annotated still runs on node-1$/);
});

it('deleting a completed migration only removes the record; the moved workload stays', async () => {
  await createRunningPod(podManifest(ns, 'done', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
  await k8s.create(pmPath(ns), migration(ns, 'move-done', { podName: 'done', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 }));
  const pm = await waitForPhase(ns, 'move-done', ['Completed', 'Failed']);
  expect(pm.status!.phase).toBe('Completed');
  await eventually('finalizer released', async () => ((await getMigration(ns, 'move-done')).metadata.finalizers?.includes(FINALIZER) ? undefined : true));
  expect(kubectl(['delete', 'podmigration', 'move-done', '-n', ns, '--timeout=30s']).code).toBe(0);
  const [target] = await podsOfMigration(ns, 'move-done');
  expect(target.metadata!.name).toBe(pm.status!.targetPod!.name);
  expect(target.metadata!.deletionTimestamp).toBeUndefined();
});
