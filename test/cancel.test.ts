// Cancellation: deleting a PodMigration before the source is removed aborts it cleanly
// (finalizer); the cancel annotation does the same and keeps the record as Cancelled.
import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigration } from '../src/api/types';
import { paths } from '../src/kube/client';
import { buildTargetPod, targetPodName } from '../src/migration/optimizedPod';
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

const { ns, operator } = operatorNamespace('cancel');
const FINALIZER = 'migration.ai-storage.io/cleanup';
const CLAIM = 'migration.ai-storage.io/claimed-by';

/** A migration stuck waiting for its new pod (never Ready on node-2), with that pod made. */
async function stuck(podName: string) {
  const source = await createRunningPod(
    podManifest(ns, podName, 'node-1', TRAINING_CONTAINERS.slice(0, 2), { 'kwok.podmigration.test/unready-on': 'node-2' }),
  );
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
  await eventually('finalizer released', async () =>
    (await getMigration(ns, name)).metadata.finalizers?.includes(FINALIZER) ? undefined : true,
  );
  const done = await getMigration(ns, name);
  expect(done.status!.conditions!.find((c) => c.type === 'RolledBack')).toMatchObject({ status: 'True', reason: 'SourcePodRunning' });
  expect(done.status!.message).toMatch(
    /^cancelled by the migration\.ai-storage\.io\/cancel annotation; removed pod annotated-mig-\w+; source pod annotated still runs on node-1$/,
  );
});

it('deleting a completed migration only removes the record; the moved workload stays', async () => {
  await createRunningPod(podManifest(ns, 'done', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
  await k8s.create(
    pmPath(ns),
    migration(ns, 'move-done', { podName: 'done', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 }),
  );
  const pm = await waitForPhase(ns, 'move-done', ['Completed', 'Failed']);
  expect(pm.status!.phase).toBe('Completed');
  await eventually('finalizer released', async () =>
    (await getMigration(ns, 'move-done')).metadata.finalizers?.includes(FINALIZER) ? undefined : true,
  );
  expect(kubectl(['delete', 'podmigration', 'move-done', '-n', ns, '--timeout=30s']).code).toBe(0);
  const [target] = await podsOfMigration(ns, 'move-done');
  expect(target.metadata!.name).toBe(pm.status!.targetPod!.name);
  expect(target.metadata!.deletionTimestamp).toBeUndefined();
});

/**
 * What an operator killed between creating a migration's copy and the status write that
 * follows leaves: a record that reads Pending with the finalizer on, the claim on the
 * source, and the copy. Built by hand while the operator is down, so that it is exact.
 */
it('a record deleted while the operator was down, with its copy made but not on record, is cleaned up when it returns', async () => {
  await operator.stop('SIGKILL');
  let started = false;
  try {
    const source = await createRunningPod(podManifest(ns, 'down', 'node-1', TRAINING_CONTAINERS.slice(0, 2)));
    const name = 'move-down';
    const pm = await k8s.create<PodMigration>(pmPath(ns), {
      ...migration(ns, name, { podName: 'down', sourceNode: 'node-1', targetNode: 'node-2' }),
      metadata: { name, namespace: ns, finalizers: [FINALIZER] },
    });
    const claimed = await k8s.mergePatch<V1Pod>(paths.pod(ns, 'down'), {
      metadata: { annotations: { [CLAIM]: `${name}/${pm.metadata.uid}` } },
    });
    const copy = buildTargetPod(claimed, {
      name: targetPodName('down', pm.metadata.uid!),
      where: { node: 'node-2' },
      migrationName: name,
      migrationUid: pm.metadata.uid!,
      keep: new Set(['trainer', 'exporter']),
    });
    await k8s.create(paths.pods(ns), copy);
    expect((await getMigration(ns, name)).status).toEqual({ phase: 'Pending', observedGeneration: 0 });
    expect(kubectl(['delete', 'podmigration', name, '-n', ns, '--wait=false']).code).toBe(0);
    operator.start();
    started = true;
    await eventually('record gone', async () => (kubectl(['get', 'podmigration', name, '-n', ns]).code !== 0 ? true : undefined), 30_000);
    await eventually('copy removed', async () => ((await podsOfMigration(ns, name)).length === 0 ? true : undefined), 30_000);
    await expectSourceIntact('down', source.metadata!.uid!);
    expect((await getPod(ns, 'down'))!.metadata!.annotations?.[CLAIM]).toBeUndefined();
  } finally {
    if (!started) operator.start();
  }
});
