// The operator is killed with SIGKILL while a migration is in each phase, then started
// again: the migration completes from its status alone, with exactly one target pod and
// at most one checkpoint claim.
import type { Phase, PodMigration } from '../src/api/types';
import {
  DOWNLOADER_DONE,
  TRAINING_CONTAINERS,
  claimsOfMigration,
  createRunningPod,
  eventually,
  getMigration,
  getPod,
  k8s,
  migration,
  operatorNamespace,
  pmPath,
  podManifest,
  podsOfMigration,
  waitForPhase,
} from './helpers';

const { ns, operator } = operatorNamespace('restart', { start: false });
let serial = 0;

/**
 * Starts the operator and freezes it (SIGSTOP) the moment the migration's status shows
 * `phase`, then kills it (SIGKILL). Returns the phase the API server held at the kill.
 */
async function killIn(name: string, phase: Phase): Promise<Phase | undefined> {
  let resolveSeen: () => void;
  const seen = new Promise<void>((r) => (resolveSeen = r));
  const req = k8s.watch(pmPath(ns), { fieldSelector: `metadata.name=${name}` }, (_type, obj) => {
    if ((obj as unknown as PodMigration).status?.phase === phase) {
      operator.signal('SIGSTOP');
      resolveSeen();
    }
  });
  req.done.catch(() => undefined);
  operator.start();
  await Promise.race([seen, waitForPhase(ns, name, ['Completed', 'Failed'], 60_000)]);
  req.abort();
  operator.signal('SIGSTOP');
  const atKill = (await getMigration(ns, name)).status?.phase;
  await operator.stop('SIGKILL');
  return atKill;
}

async function newMigration(): Promise<string> {
  serial += 1;
  const pod = `job-${serial}`;
  await createRunningPod(podManifest(ns, pod, 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
  const name = `move-${serial}`;
  await k8s.create(
    pmPath(ns),
    migration(ns, name, { podName: pod, sourceNode: 'node-1', targetNode: 'node-2', preservePV: true, metricsDelaySeconds: 2 }),
  );
  return name;
}

async function expectCompletedOnce(name: string): Promise<void> {
  operator.start();
  const pm = await waitForPhase(ns, name, ['Completed', 'Failed'], 90_000);
  await operator.stop();
  expect(pm.status).toMatchObject({ phase: 'Completed', resources: { savings: { cpu: '33.3%', memory: '66.7%' } } });
  const targets = await podsOfMigration(ns, name);
  expect(targets.map((p) => p.metadata!.name)).toEqual([pm.status!.targetPod!.name]);
  const claims = await claimsOfMigration(ns, name);
  expect(claims.map((c) => c.metadata.name)).toEqual([pm.status!.checkpointPVC]);
  await eventually('source pod gone', async () => ((await getPod(ns, pm.spec.podName)) ? undefined : true), 30_000);
}

it('resumes a migration created while the operator was down (Pending)', async () => {
  const name = await newMigration();
  expect((await getMigration(ns, name)).status).toEqual({ phase: 'Pending', observedGeneration: 0 }); // the schema's default, before any write
  await expectCompletedOnce(name);
});

// Every phase the API server can hold between two writes of a migration whose pod runs.
// (Neither CapturingState nor Checkpointing is one: a migration is started in the reconcile
// that runs steps 1 to 3, and a step that finishes hands over to the next at once; a kill
// in the middle of them resumes from Pending, as the test above does.)
const PHASES: Phase[] = ['CreatingTargetPod', 'DeletingSourcePod', 'CollectingMetrics'];

it.each(PHASES)('resumes after SIGKILL in %s', async (phase) => {
  // The kill races with the operator's progress; try until it lands in the phase asked
  // for. Every attempt, wherever it landed, must still complete exactly once.
  const landed: (Phase | undefined)[] = [];
  for (let attempt = 0; attempt < 6 && !landed.includes(phase); attempt++) {
    const name = await newMigration();
    landed.push(await killIn(name, phase));
    await expectCompletedOnce(name);
  }
  expect(landed).toContain(phase);
});
