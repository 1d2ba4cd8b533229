// The control plane goes away mid-migration and comes back: the operator reconnects its
// watches and the migration completes; a migration created afterwards runs too.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLUSTER_DIR, ROOT } from './cluster/provider';
import {
  TRAINING_CONTAINERS,
  createRunningPod,
  env,
  k8s,
  migration,
  operatorNamespace,
  pmPath,
  podManifest,
  podsOfMigration,
  sleep,
  waitForPhase,
} from './helpers';

// Only on the local control plane, which this test may stop and start.
const local = env.started ? it : it.skip;
const { ns, operator } = operatorNamespace('apiserver');

local('completes a migration across a kube-apiserver restart', async () => {
  await createRunningPod(podManifest(ns, 'before', 'node-1', TRAINING_CONTAINERS.slice(0, 2)));
  await k8s.create(
    pmPath(ns),
    migration(ns, 'move-before', { podName: 'before', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 6 }),
  );
  await waitForPhase(ns, 'move-before', ['CollectingMetrics']);

  const pid = Number(readFileSync(join(CLUSTER_DIR, 'kube-apiserver.pid'), 'utf8'));
  process.kill(pid, 'SIGKILL');
  await sleep(3000); // the operator's watches and its step-5 timer fail meanwhile
  execFileSync(join(ROOT, 'hack/cluster.sh'), ['up'], { env: { ...process.env, CLUSTER_DIR }, stdio: 'inherit' });

  const pm = await waitForPhase(ns, 'move-before', ['Completed', 'Failed'], 120_000);
  expect(pm.status!.phase).toBe('Completed');
  expect(await podsOfMigration(ns, 'move-before')).toHaveLength(1);
  expect(operator.log()).toMatch(/watch failed; listing again/);

  // New work arrives through the re-established watches.
  await createRunningPod(podManifest(ns, 'after', 'node-1', TRAINING_CONTAINERS.slice(0, 2)));
  await k8s.create(
    pmPath(ns),
    migration(ns, 'move-after', { podName: 'after', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 }),
  );
  expect((await waitForPhase(ns, 'move-after', ['Completed', 'Failed'], 60_000)).status!.phase).toBe('Completed');
});
