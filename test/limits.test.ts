// Limits on migrations in flight: past them a migration waits in Pending, with a condition
// that names the limit, and starts when one in flight ends, oldest first. A slot is held
// until the source is gone, and what step 1 can only refuse is refused without one.
import type { Condition, PodMigration } from '../src/api/types';
import { paths } from '../src/kube/client';
import {
  TRAINING_CONTAINERS,
  createRunningPod,
  eventually,
  getMigration,
  getPod,
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
// Holding a slot: started, and its source not yet gone (the stabilisation wait holds none).
const inFlight = (pm: PodMigration) =>
  !['Pending', 'CollectingMetrics', 'Completed', 'Failed', 'Cancelled'].includes(pm.status?.phase ?? 'Pending');

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

it('gives the slot back once the source is gone: the stabilisation wait holds none', async () => {
  for (const pod of ['s1', 's2']) await createRunningPod(podManifest(ns, pod, 'node-3', TRAINING_CONTAINERS.slice(0, 1)));
  // Both leave node-3, one at a time (--max-migrations-per-node 1).
  await k8s.create(
    pmPath(ns),
    migration(ns, 'm-s1', { podName: 's1', sourceNode: 'node-3', targetNode: 'node-1', metricsDelaySeconds: 120 }),
  );
  await sleep(50);
  await k8s.create(
    pmPath(ns),
    migration(ns, 'm-s2', { podName: 's2', sourceNode: 'node-3', targetNode: 'node-2', metricsDelaySeconds: 0 }),
  );
  const done = await waitForPhase(ns, 'm-s2', ['Completed', 'Failed']);
  expect(done.status!.phase).toBe('Completed');
  // m-s1 still stabilises (its source long gone) while m-s2 ran out of the same node.
  expect((await getMigration(ns, 'm-s1')).status!.phase).toBe('CollectingMetrics');
  expect(Date.parse(done.status!.startTime!)).toBeGreaterThanOrEqual(
    Date.parse((await getMigration(ns, 'm-s1')).status!.steps!.find((s) => s.name === 'CollectMetrics')!.startTime!) - 1_000,
  );
});

it('refuses at once, without a slot, what step 1 can only refuse, even behind a full queue', async () => {
  const blocker = podManifest(ns, 'hold', 'node-1', TRAINING_CONTAINERS.slice(0, 1));
  blocker.metadata!.labels = { app: 'hold' };
  await createRunningPod(blocker);
  await createRunningPod(podManifest(ns, 'elsewhere', 'node-2', TRAINING_CONTAINERS.slice(0, 1)));
  await budget('hold');
  await k8s.create(
    pmPath(ns),
    migration(ns, 'm-hold', { podName: 'hold', sourceNode: 'node-1', targetNode: 'node-3', timeoutSeconds: 300 }),
  );
  await eventually('m-hold blocked by its budget', async () =>
    reconciling(await getMigration(ns, 'm-hold'))?.reason === 'EvictionBlocked' ? true : undefined,
  );
  // Out of node-1: no slot for either while m-hold holds it.
  await k8s.create(pmPath(ns), migration(ns, 'm-ghost', { podName: 'ghost', sourceNode: 'node-1', targetNode: 'node-3' }));
  await k8s.create(pmPath(ns), migration(ns, 'm-wrong', { podName: 'elsewhere', sourceNode: 'node-1', targetNode: 'node-3' }));
  // And one that can run waits its turn.
  await createRunningPod(podManifest(ns, 'next', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
  await k8s.create(
    pmPath(ns),
    migration(ns, 'm-next', { podName: 'next', sourceNode: 'node-1', targetNode: 'node-3', metricsDelaySeconds: 0 }),
  );
  const t0 = Date.now();
  const ghost = await waitForPhase(ns, 'm-ghost', ['Failed', 'Completed'], 20_000);
  const wrong = await waitForPhase(ns, 'm-wrong', ['Failed', 'Completed'], 20_000);
  expect(Date.now() - t0).toBeLessThan(20_000);
  expect(ghost.status).toMatchObject({ phase: 'Failed', reason: 'PodNotFound' });
  expect(wrong.status).toMatchObject({ phase: 'Failed', reason: 'PodNotOnSourceNode' });
  // m-hold still holds the slot; the runnable one still waits for it, and nothing was made for it.
  expect((await getMigration(ns, 'm-hold')).status!.phase).toBe('DeletingSourcePod');
  const next = await getMigration(ns, 'm-next');
  expect(next.status!.phase).toBe('Pending');
  expect(reconciling(next)!.reason).toBe('MigrationLimitReached');
  expect(await getPod(ns, 'elsewhere')).toMatchObject({ spec: { nodeName: 'node-2' } });

  await k8s.delete(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/hold`);
  expect((await waitForPhase(ns, 'm-next', ['Completed', 'Failed'])).status!.phase).toBe('Completed');
});
