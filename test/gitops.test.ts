// What the tools users wait with make of a PodMigration: kstatus (the library Flux, kpt
// and cli-utils use, built from sigs.k8s.io/cli-utils into hack/tools/kstatus) on every
// state the record passes through; and committing a pod together with its migration.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigration } from '../src/api/types';
import { paths } from '../src/kube/client';
import {
  DOWNLOADER_DONE,
  TRAINING_CONTAINERS,
  env,
  eventually,
  getMigration,
  k8s,
  kubectl,
  migration,
  operatorNamespace,
  pmPath,
  podManifest,
  sleep,
  waitForPhase,
} from './helpers';

const { ns, operator } = operatorNamespace('gitops', { start: false });

/** kstatus's verdict on each object, in order. */
function kstatus(objects: object[]): { status: string; message: string }[] {
  const r = spawnSync(join(env.bin, 'kstatus'), { input: objects.map((o) => JSON.stringify(o)).join('\n') + '\n', encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kstatus failed: ${r.stderr}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

/** Samples the record every 50 ms until `until` says stop; returns every distinct version seen. */
async function sampleUntil(name: string, until: (pm: PodMigration) => boolean, timeoutMs = 60_000): Promise<PodMigration[]> {
  const seen: PodMigration[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pm = await getMigration(ns, name);
    if (seen.at(-1)?.metadata.resourceVersion !== pm.metadata.resourceVersion) seen.push(pm);
    if (until(pm) || Date.now() > deadline) return seen;
    await sleep(50);
  }
}

it('is InProgress for kstatus from creation, with the operator down, until Completed; then Current', async () => {
  await k8s.create(paths.pods(ns), podManifest(ns, 'flux', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
  await k8s.create(
    pmPath(ns),
    migration(ns, 'move-flux', { podName: 'flux', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 1 }),
  );
  // No operator yet: the record as stored by the API server alone.
  const stored = await getMigration(ns, 'move-flux');
  expect(stored.status).toEqual({ phase: 'Pending', observedGeneration: 0 });
  // TARGET shows status.targetNode: where the pod went, recorded by the operator (blank until then).
  expect(kubectl(['get', 'podmigration', 'move-flux', '-n', ns]).stdout).toMatch(/move-flux\s+flux\s+node-1\s+Pending\s/);
  await sleep(1_000);
  const idle = await getMigration(ns, 'move-flux');
  operator.start();
  const seen = [stored, idle, ...(await sampleUntil('move-flux', (pm) => ['Completed', 'Failed'].includes(pm.status?.phase ?? '')))];
  const verdicts = kstatus(seen);
  const phases = seen.map((pm) => pm.status?.phase);
  process.stdout.write(`kstatus over ${seen.length} versions: ${phases.map((p, i) => `${p}=${verdicts[i].status}`).join(' ')}\n`);
  expect(phases.at(-1)).toBe('Completed');
  expect(verdicts.at(-1)!.status).toBe('Current');
  // Never Current before Completed.
  expect(verdicts.slice(0, -1).map((v) => v.status)).toEqual(verdicts.slice(0, -1).map(() => 'InProgress'));
  expect(seen.length).toBeGreaterThan(4);
});

it('is Failed for kstatus when a migration fails or is cancelled', async () => {
  await k8s.create(pmPath(ns), migration(ns, 'move-missing', { podName: 'no-such-pod', sourceNode: 'node-1', targetNode: 'node-2' }));
  const failed = await waitForPhase(ns, 'move-missing', ['Failed']);
  await k8s.create(
    paths.pods(ns),
    podManifest(ns, 'held', 'node-1', TRAINING_CONTAINERS.slice(0, 1), { 'kwok.podmigration.test/unready-on': 'node-2' }),
  );
  await k8s.create(
    pmPath(ns),
    migration(ns, 'move-held', { podName: 'held', sourceNode: 'node-1', targetNode: 'node-2', readyTimeoutSeconds: 120 }),
  );
  await waitForPhase(ns, 'move-held', ['CreatingTargetPod']);
  await k8s.mergePatch(pmPath(ns, 'move-held'), { metadata: { annotations: { 'migration.ai-storage.io/cancel': 'true' } } });
  const cancelled = await waitForPhase(ns, 'move-held', ['Cancelled']);
  expect(kstatus([failed, cancelled]).map((v) => v.status)).toEqual(['Failed', 'Failed']);
});

it('waits for a pod committed together with its migration while it starts', async () => {
  // Held back from scheduling as a slow image pull would hold it from Running.
  // Pinned to node-1 the way the operator pins its own pods (which a migration replaces).
  const manifest = podManifest(ns, 'starting', 'node-1', TRAINING_CONTAINERS.slice(0, 2));
  delete manifest.spec!.nodeName;
  manifest.spec!.affinity = {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }] }],
      },
    },
  };
  manifest.spec!.schedulingGates = [{ name: 'test.podmigration/hold' }];
  await k8s.create(paths.pods(ns), manifest);
  await k8s.create(
    pmPath(ns),
    migration(ns, 'move-starting', { podName: 'starting', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 }),
  );
  const waiting = await eventually('WaitingForPod', async () => {
    const pm = await getMigration(ns, 'move-starting');
    return pm.status?.conditions?.find((c) => c.type === 'Reconciling')?.reason === 'WaitingForPod' ? pm : undefined;
  });
  expect(waiting.status!.phase).toBe('CapturingState');
  expect(waiting.status!.message).toMatch(/waiting for pod starting to be Running \(phase Pending, not scheduled yet\)/);
  await k8s.mergePatch(paths.pod(ns, 'starting'), { spec: { schedulingGates: null } });
  const pm = await waitForPhase(ns, 'move-starting', ['Completed', 'Failed'], 60_000);
  expect(pm.status!.phase).toBe('Completed');
});

describe('re-applying a committed migration (prune and re-sync, a rebuilt cluster)', () => {
  const apply = async (name: string, podName: string, sourceNode: string, targetNode: string) => {
    await k8s.delete(pmPath(ns, name)).catch(() => undefined);
    await eventually(
      `${name} gone`,
      async () =>
        await k8s.get(pmPath(ns, name)).then(
          () => undefined,
          () => true,
        ),
    );
    await k8s.create(pmPath(ns, undefined), migration(ns, name, { podName, sourceNode, targetNode, metricsDelaySeconds: 0 }));
    return waitForPhase(ns, name, ['Completed', 'Failed'], 60_000);
  };
  const live = async () =>
    (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { labelSelector: 'app=committed' })).items.filter(
      (p) => !p.metadata?.deletionTimestamp,
    );

  it('completes without touching anything when the pod made from spec.podName already runs on the target (AlreadyOnTarget)', async () => {
    await k8s.create(paths.pods(ns), podManifest(ns, 'committed', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
    await eventually('committed Running', async () =>
      (await k8s.get<V1Pod>(paths.pod(ns, 'committed'))).status?.phase === 'Running' ? true : undefined,
    );
    const first = await apply('move-committed', 'committed', 'node-1', 'node-2');
    expect(first.status!.phase).toBe('Completed');
    const [copy] = await live();
    // Pruned and re-applied, unchanged:
    const again = await apply('move-committed', 'committed', 'node-1', 'node-2');
    expect(again.status).toMatchObject({ phase: 'Completed', reason: 'AlreadyOnTarget' });
    expect(again.status!.message).toMatch(
      new RegExp(`pod ${copy.metadata!.name}, made from it, already runs on node-2; nothing was touched`),
    );
    expect(condition(again, 'Ready')?.status).toBe('True');
    expect((await live()).map((p) => p.metadata!.uid)).toEqual([copy.metadata!.uid]);
  });

  it('acts on that pod when it runs elsewhere, so the record holds again', async () => {
    const [copy] = await live();
    // Someone moved it on to node-3 since.
    const away = await apply('move-away', copy.metadata!.name!, 'node-2', 'node-3');
    expect(away.status!.phase).toBe('Completed');
    const again = await apply('move-committed', 'committed', 'node-1', 'node-2');
    expect(again.status).toMatchObject({ phase: 'Completed', sourcePod: { node: 'node-3' } });
    const pods = await live();
    expect(pods.map((p) => p.spec!.nodeName)).toEqual(['node-2']);
  });
});

const condition = (pm: PodMigration, type: string) => pm.status?.conditions?.find((c) => c.type === type);

it('leaves the copy out of kubectl apply --prune: it carries no last-applied-configuration', async () => {
  const pod = JSON.stringify(podManifest(ns, 'applied', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
  expect(kubectl(['apply', '-n', ns, '-f', '-'], pod).code).toBe(0);
  await eventually('applied Running', async () =>
    (await k8s.get<V1Pod>(paths.pod(ns, 'applied'))).status?.phase === 'Running' ? true : undefined,
  );
  await k8s.create(
    pmPath(ns),
    migration(ns, 'move-applied', { podName: 'applied', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 }),
  );
  const pm = await waitForPhase(ns, 'move-applied', ['Completed', 'Failed']);
  expect(pm.status!.phase).toBe('Completed');
  const copy = pm.status!.targetPod!.name;
  expect(
    (await k8s.get<V1Pod>(paths.pod(ns, copy))).metadata!.annotations!['kubectl.kubernetes.io/last-applied-configuration'],
  ).toBeUndefined();
  // The set the user applies with that label now holds something else: prune runs over it.
  const other = JSON.stringify({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'applied-config', namespace: ns, labels: { app: 'applied' } },
  });
  const r = kubectl(['apply', '-n', ns, '--prune', '-l', 'app=applied', '-f', '-'], other);
  expect(r.code).toBe(0);
  const after = await k8s.get<V1Pod>(paths.pod(ns, copy));
  expect(after.metadata!.deletionTimestamp).toBeUndefined();
});
