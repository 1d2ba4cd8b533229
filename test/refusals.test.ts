// Runtime refusals: the migration ends in Failed with a distinct reason and a message, and
// nothing is created or deleted.
import type { V1Pod } from '@kubernetes/client-node';
import {
  DOWNLOADER_DONE,
  OperatorProcess,
  TRAINING_CONTAINERS,
  claimsOfMigration,
  createNamespace,
  createRunningPod,
  deleteNamespace,
  eventsOf,
  eventually,
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
const pods: Record<string, V1Pod> = {};

beforeAll(async () => {
  ns = await createNamespace('refusals');
  pods.ok = await createRunningPod(podManifest(ns, 'ok', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
  pods.failed = await createRunningPod(
    podManifest(ns, 'failed', 'node-1', TRAINING_CONTAINERS, { 'kwok.podmigration.test/fail-on': 'node-1' }),
    'Failed',
  );
  pods.finished = await createRunningPod(
    podManifest(ns, 'finished', 'node-1', TRAINING_CONTAINERS.slice(0, 2), { 'kwok.podmigration.test/terminated': 'trainer,exporter' }),
  );
  operator = new OperatorProcess(ns);
  operator.start();
});

afterAll(async () => {
  await operator.stop('SIGTERM');
  await deleteNamespace(ns);
});

it.each([
  [
    'the pod does not exist',
    'no-pod',
    { podName: 'ghost', sourceNode: 'node-1', targetNode: 'node-2' },
    'PodNotFound',
    /pod .*ghost does not exist/,
  ],
  [
    'the pod is not on sourceNode',
    'wrong-node',
    { podName: 'ok', sourceNode: 'node-3', targetNode: 'node-2' },
    'PodNotOnSourceNode',
    /runs on node node-1, not on spec\.sourceNode node-3/,
  ],
  [
    'the pod is not Running',
    'not-running',
    { podName: 'failed', sourceNode: 'node-1', targetNode: 'node-2' },
    'PodNotRunning',
    /phase Failed, not Running/,
  ],
  [
    'every container has finished',
    'no-running',
    { podName: 'finished', sourceNode: 'node-1', targetNode: 'node-2' },
    'NoRunningContainers',
    /no container left to migrate: every one has finished/,
  ],
  [
    'the target node does not exist',
    'no-node',
    { podName: 'ok', sourceNode: 'node-1', targetNode: 'node-9' },
    'TargetNodeNotFound',
    /node-9 does not exist/,
  ],
])('refuses when %s', async (_what, name, spec, reason, message) => {
  const before = spec.podName === 'ghost' ? undefined : await getPod(ns, spec.podName);
  await k8s.create(pmPath(ns), migration(ns, name, { ...spec, preservePV: true }));

  const pm = await waitForPhase(ns, name, ['Failed', 'Completed']);
  expect(pm.status).toMatchObject({ phase: 'Failed', reason, step: 1 });
  expect(pm.status!.message).toMatch(message);
  expect(pm.status!.steps![0]).toMatchObject({ name: 'CaptureState', state: 'Failed' });
  const conditions = Object.fromEntries(pm.status!.conditions!.map((c) => [c.type, [c.status, c.reason]]));
  expect(conditions).toEqual({ Ready: ['False', reason], Reconciling: ['False', 'Failed'], Stalled: ['True', reason] });
  // Events are recorded right after the status write.
  await eventually(
    `Warning event ${reason}`,
    async () => ((await eventsOf(ns, name)).some((e) => e.type === 'Warning' && e.reason === reason) ? true : undefined),
    10_000,
  );

  // Nothing created, nothing touched.
  expect(await podsOfMigration(ns, name)).toEqual([]);
  expect(await claimsOfMigration(ns, name)).toEqual([]);
  if (before) {
    const after = await getPod(ns, spec.podName);
    expect(after!.metadata!.uid).toBe(before.metadata!.uid);
    expect(after!.metadata!.deletionTimestamp).toBeUndefined();
    expect(after!.spec!.nodeName).toBe('node-1');
  }
});
