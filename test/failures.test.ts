// Failures after something was created: the migration ends in Failed, the pod it created
// is removed, and the source pod is untouched.
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
import type { PodMigrationSpec } from '../src/api/types';

const { ns } = operatorNamespace('failures');

async function expectRolledBack(name: string, podName: string, sourceUid: string, reason: string, message: RegExp) {
  const pm = await waitForPhase(ns, name, ['Failed', 'Completed'], 90_000);
  expect(pm.status).toMatchObject({ phase: 'Failed', reason });
  expect(pm.status!.message).toMatch(message);
  // The target pod had been created, and is removed.
  expect(pm.status!.targetPod?.name).toMatch(new RegExp(`^${podName}-mig-`));
  await eventually('target pod removed', async () => ((await podsOfMigration(ns, name)).length === 0 ? true : undefined), 30_000);
  const source = await getPod(ns, podName);
  expect(source!.metadata!.uid).toBe(sourceUid);
  expect(source!.metadata!.deletionTimestamp).toBeUndefined();
  expect(source!.status!.phase).toBe('Running');
  return pm;
}

async function start(podName: string, annotations: Record<string, string>, spec: Partial<PodMigrationSpec>) {
  const source = await createRunningPod(podManifest(ns, podName, 'node-1', TRAINING_CONTAINERS.slice(0, 2), annotations));
  const name = `move-${podName}`;
  await k8s.create(pmPath(ns), migration(ns, name, { podName, sourceNode: 'node-1', targetNode: 'node-2', ...spec }));
  return { name, uid: source.metadata!.uid! };
}

it('fails after the ready deadline when the new pod never becomes Ready', async () => {
  const { name, uid } = await start('never-ready', { 'kwok.podmigration.test/unready-on': 'node-2' }, { readyTimeoutSeconds: 3 });
  // While it waits, the deadline is stated and the new pod is Running but not Ready.
  const waiting = await eventually('waiting for Ready', async () => {
    const pm = await waitForPhase(ns, name, ['CreatingTargetPod', 'Failed']);
    return pm.status!.message?.includes('ready deadline') ? pm : undefined;
  });
  expect(waiting.status!.phase).toBe('CreatingTargetPod');
  const pm = await expectRolledBack(name, 'never-ready', uid, 'TargetPodNotReady', /did not become Ready within 3s/);
  const step3 = pm.status!.steps![2];
  expect(Date.parse(step3.completionTime!) - Date.parse(step3.startTime!)).toBeGreaterThanOrEqual(3000);
});

it('fails fast when the new pod fails', async () => {
  const { name, uid } = await start('fails', { 'kwok.podmigration.test/fail-on': 'node-2' }, {});
  await expectRolledBack(name, 'fails', uid, 'TargetPodFailed', /ended in phase Failed/);
});

it('fails with Timeout, rolling back, when the whole migration passes spec.timeoutSeconds', async () => {
  const { name, uid } = await start(
    'timeout',
    { 'kwok.podmigration.test/unready-on': 'node-2' },
    { timeoutSeconds: 3, readyTimeoutSeconds: 300 },
  );
  await expectRolledBack(name, 'timeout', uid, 'Timeout', /spec\.timeoutSeconds \(3s\)/);
});
