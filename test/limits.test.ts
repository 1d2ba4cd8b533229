// Limits on migrations in flight: past them a migration waits in Pending, with a condition
// that names the limit, and starts when one in flight ends, oldest first.
import type { Condition, PodMigration } from '../src/api/types';
import { paths } from '../src/kube/client';
import {
  TRAINING_CONTAINERS,
  createRunningPod,
  eventually,
  getMigration,
  k8s,
  migration,
  operatorNamespace,
  pmPath,
  podManifest,
  sleep,
  waitForPhase,
} from './helpers';

const { ns } = operatorNamespace('limits', { args: ['--max-migrations-in-flight', '2', '--max-migrations-per-node', '1'] });

const reconciling = (pm: PodMigration): Condition | undefined => pm.status?.conditions?.find((c) => c.type === 'Reconciling');
const inFlight = (pm: PodMigration) => !['Pending', 'Completed', 'Failed', 'Cancelled'].includes(pm.status?.phase ?? 'Pending');

async function budget(name: string): Promise<void> {
  await k8s.create(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`, {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name },
    spec: { selector: { matchLabels: { app: name } }, maxUnavailable: 0 },
  });
  await eventually(`budget ${name} observed`, async () => {
    const b = await k8s.get<{ status?: { observedGeneration?: number } }>(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/${name}`);
    return b.status?.observedGeneration ? true : undefined;
  });
}

it('holds migrations past the per-node and cluster-wide limits in Pending, then runs them oldest first', async () => {
  // Three pods leave node-1 (one at a time, per node), one leaves node-3 for node-2 (which
  // node-1's migrations also go to: it waits for the target), and one goes node-3 -> node-1.
  const routes: [string, string, string][] = [
    ['a', 'node-1', 'node-2'],
    ['b', 'node-1', 'node-3'],
    ['c', 'node-1', 'node-3'],
    ['d', 'node-3', 'node-2'],
    ['e', 'node-2', 'node-1'],
  ];
  for (const [pod, from] of routes) {
    const p = podManifest(ns, pod, from, TRAINING_CONTAINERS.slice(0, 1));
    p.metadata!.labels = { app: pod };
    await createRunningPod(p);
  }
  // a holds its slot (out of node-1, into node-2) until its budget is lifted.
  await budget('a');
  for (const [pod, from, to] of routes) {
    await k8s.create(
      pmPath(ns),
      migration(ns, `m-${pod}`, { podName: pod, sourceNode: from, targetNode: to, metricsDelaySeconds: 0, timeoutSeconds: 120 }),
    );
    await sleep(50); // distinct creation order
  }
  const blocked = await eventually('m-a blocked by its budget', async () => {
    const pm = await getMigration(ns, 'm-a');
    return reconciling(pm)?.reason === 'EvictionBlocked' ? pm : undefined;
  });
  expect(blocked.status!.phase).toBe('DeletingSourcePod');

  // m-e fits (out of node-2, into node-1; nothing else there), so it runs beside m-a and
  // ends; the others wait, each naming what holds it.
  expect((await waitForPhase(ns, 'm-e', ['Completed', 'Failed'])).status!.phase).toBe('Completed');
  const waiting = await eventually('b, c, d waiting for a slot', async () => {
    const all = await Promise.all(['m-b', 'm-c', 'm-d'].map((n) => getMigration(ns, n)));
    return all.every((pm) => reconciling(pm)?.reason === 'MigrationLimitReached') ? all : undefined;
  });
  for (const pm of waiting) {
    expect(pm.status!.phase).toBe('Pending');
    expect(reconciling(pm)!.status).toBe('True');
  }
  // (And the cluster-wide limit, while m-e ran.)
  expect(waiting[0].status!.message).toMatch(
    /^waiting for a migration slot: .*1 out of node node-1, the most --max-migrations-per-node \(1\) allows/,
  );
  expect(waiting[2].status!.message).toMatch(
    /^waiting for a migration slot: .*1 into node node-2, the most --max-migrations-per-node \(1\) allows/,
  );
  // Nothing was made for them.
  const pods = await k8s.get<{ items: { metadata: { name: string } }[] }>(paths.pods(ns));
  const names = pods.items.map((p) => p.metadata.name);
  expect(names).toEqual(expect.arrayContaining(['b', 'c', 'd']));
  expect(names.filter((n) => /^[bcd]-/.test(n))).toEqual([]);

  // Lift the budget: a ends, and the rest run within the limits until all have completed.
  await k8s.delete(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/a`);
  const migrations = ['m-a', 'm-b', 'm-c', 'm-d'];
  let most = 0;
  let outOfNode1 = 0;
  for (;;) {
    const all = await Promise.all(migrations.map((n) => getMigration(ns, n)));
    const flying = all.filter(inFlight);
    most = Math.max(most, flying.length);
    outOfNode1 = Math.max(outOfNode1, flying.filter((pm) => pm.spec.sourceNode === 'node-1').length);
    if (all.every((pm) => pm.status?.phase === 'Completed')) {
      // Started oldest first where they competed for node-1: b before c.
      const started = (n: string) => Date.parse(all[migrations.indexOf(n)].status!.startTime!);
      expect(started('m-b')).toBeLessThanOrEqual(started('m-c'));
      expect(started('m-a')).toBeLessThan(started('m-b'));
      break;
    }
    if (all.some((pm) => pm.status?.phase === 'Failed')) throw new Error(JSON.stringify(all.map((pm) => pm.status)));
    await sleep(50);
  }
  expect(most).toBeLessThanOrEqual(2);
  expect(outOfNode1).toBeLessThanOrEqual(1);
});
