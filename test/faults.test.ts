// Adversarial faults, one test per way a migration could once end with two copies, none,
// or a status that lied: racing duplicates, slow deletions (a pod finalizer stands in for
// a kubelet's grace period), budgets, a permission taken away, a namespace deleted
// mid-way, a copy that fails after the source is gone.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';

import type { Condition, PodMigration } from '../src/api/types';
import { paths } from '../src/kube/client';
import { CLUSTER_DIR } from './cluster/provider';
import {
  DOWNLOADER_DONE,
  OperatorProcess,
  TRAINING_CONTAINERS,
  createNamespace,
  createRunningPod,
  deleteNamespace,
  eventsOf,
  eventually,
  getMigration,
  getPod,
  k8s,
  migration,
  operatorNamespace,
  pmPath,
  podManifest,
  podsOfMigration,
  sleep,
  waitForPhase,
  tokenKubeconfig,
} from './helpers';
import { writeFileSync } from 'node:fs';

const HOLD = 'test.podmigration/hold';
const { ns, operator } = operatorNamespace('faults', { args: ['--max-concurrent-reconciles', '8'] });

const live = (p: V1Pod | undefined) => !!p && !p.metadata?.deletionTimestamp;
const condition = (pm: PodMigration, type: string): Condition | undefined => pm.status?.conditions?.find((c) => c.type === type);
const release = (name: string, namespace = ns) =>
  k8s.mergePatch(paths.pod(namespace, name), { metadata: { finalizers: null } }).catch(() => undefined);
const hold = (name: string, namespace = ns) => k8s.mergePatch(paths.pod(namespace, name), { metadata: { finalizers: [HOLD] } });

async function pdb(name: string, spec: object, namespace = ns): Promise<void> {
  await k8s.create(`/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets`, {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name },
    spec: { selector: { matchLabels: { app: name } }, ...spec },
  });
  // The disruption controller must have counted the pods before it allows anything.
  await eventually(`budget ${name} observed`, async () => {
    const b = await k8s.get<{ status?: { observedGeneration?: number } }>(
      `/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets/${name}`,
    );
    return b.status?.observedGeneration ? true : undefined;
  });
}
const unblock = (name: string, namespace = ns) => k8s.delete(`/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets/${name}`);

/** Waits until step 4 reports that a budget blocks the eviction; returns the migration. */
async function blockedInStep4(name: string): Promise<PodMigration> {
  return eventually(`${name} EvictionBlocked`, async () => {
    const pm = await getMigration(ns, name);
    return condition(pm, 'Reconciling')?.reason === 'EvictionBlocked' ? pm : undefined;
  });
}

describe('racing duplicates', () => {
  const TRIALS = 20;

  it(`never lets two migrations of one pod both proceed (${TRIALS} trials of three racing migrations)`, async () => {
    // m-03 starts first; m-02 and m-01 come in the same instant while it is under way.
    const trial = async (i: number) => {
      const pod = `race-${i}`;
      const source = await createRunningPod(podManifest(ns, pod, 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
      const spec = { podName: pod, sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 };
      await k8s.create(pmPath(ns), migration(ns, `${pod}-m-03`, spec));
      await eventually(`${pod}-m-03 has a phase`, async () => ((await getMigration(ns, `${pod}-m-03`)).status?.phase ? true : undefined));
      await Promise.all(['m-02', 'm-01'].map((m) => k8s.create(pmPath(ns), migration(ns, `${pod}-${m}`, spec))));
      const ended = await Promise.all(
        ['m-03', 'm-02', 'm-01'].map((m) => waitForPhase(ns, `${pod}-${m}`, ['Completed', 'Failed', 'Cancelled'], 90_000)),
      );
      return { pod, source, ended };
    };
    // In rounds of five at once, so the rounds race inside the operator too.
    const results = [];
    for (let round = 0; round < TRIALS / 5; round++) {
      results.push(...(await Promise.all(Array.from({ length: 5 }, (_, i) => trial(round * 5 + i)))));
    }
    await sleep(2_000); // let any rollback finish before counting
    let doubles = 0;
    for (const { pod, source, ended } of results) {
      // One moves the pod. The others are refused while it holds the pod, or, once it has
      // moved it, find the pod made from theirs already on the target (AlreadyOnTarget).
      const moved = ended.filter((pm) => pm.status!.phase === 'Completed' && pm.status!.reason !== 'AlreadyOnTarget');
      const completed = moved;
      expect([pod, moved.length]).toEqual([pod, 1]);
      for (const pm of ended.filter((m) => m !== moved[0])) {
        expect(['Failed/MigrationInProgress', 'Failed/PodTerminating', 'Failed/PodNotFound', 'Completed/AlreadyOnTarget']).toContain(
          `${pm.status!.phase}/${pm.status!.reason}`,
        );
      }
      // Exactly one live pod of the workload: the winner's copy.
      const pods = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { labelSelector: `app=${pod}` })).items.filter(live);
      if (pods.length !== 1) doubles += 1;
      expect(pods.map((p) => p.metadata!.name)).toEqual([completed[0].status!.targetPod!.name]);
      expect(pods[0].metadata!.annotations!['migration.ai-storage.io/claimed-by']).toBeUndefined();
      expect(await getPod(ns, source.metadata!.name!)).toBeUndefined();
    }
    process.stdout.write(`race: ${TRIALS} trials, ${doubles} with two live copies\n`);
    expect(doubles).toBe(0);
  });
});

describe('a duplicate that comes late', () => {
  it("refuses to move another migration's copy while that migration has not ended (MigrationInProgress)", async () => {
    await createRunningPod(podManifest(ns, 'lineage', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-lineage', { podName: 'lineage', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 15 }),
    );
    await waitForPhase(ns, 'move-lineage', ['CollectingMetrics']);
    // Its source is gone; a second record for the same pod follows the line to the first's copy.
    await k8s.create(pmPath(ns), migration(ns, 'move-lineage-again', { podName: 'lineage', sourceNode: 'node-1', targetNode: 'node-3' }));
    const second = await waitForPhase(ns, 'move-lineage-again', ['Failed', 'Completed']);
    expect(second.status).toMatchObject({ phase: 'Failed', reason: 'MigrationInProgress', step: 1 });
    expect(second.status!.message).toMatch(/was made by, and still belongs to, PodMigration move-lineage, which has not ended/);
    expect(await podsOfMigration(ns, 'move-lineage-again')).toEqual([]);
    const first = await waitForPhase(ns, 'move-lineage', ['Completed', 'Failed'], 60_000);
    expect(first.status).toMatchObject({ phase: 'Completed' });
    const [copy] = await podsOfMigration(ns, 'move-lineage');
    expect([copy.spec!.nodeName, live(copy), copy.metadata!.annotations?.['migration.ai-storage.io/claimed-by']]).toEqual([
      'node-2',
      true,
      undefined,
    ]);
  });
});

describe('slow storage', () => {
  it('waits for a checkpoint claim that binds slower than the scheduler retries (no TargetPodUnschedulable)', async () => {
    const storageClass = `slow-${randomBytes(3).toString('hex')}`;
    await k8s.create('/apis/storage.k8s.io/v1/storageclasses', {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: storageClass },
      provisioner: 'test.podmigration/slow',
      volumeBindingMode: 'Immediate',
    });
    try {
      await createRunningPod(podManifest(ns, 'patient', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
      await k8s.create(
        pmPath(ns),
        migration(ns, 'move-patient', {
          podName: 'patient',
          sourceNode: 'node-1',
          targetNode: 'node-2',
          preservePV: true,
          checkpoint: { storageClassName: storageClass },
          metricsDelaySeconds: 0,
        }),
      );
      const claim = await eventually('checkpoint claim', async () => (await getMigration(ns, 'move-patient')).status?.checkpointPVC);
      // The provisioner (this test) takes 12 s, more than twice the scheduler's grace.
      await sleep(12_000);
      expect((await getMigration(ns, 'move-patient')).status!.phase).toBe('CreatingTargetPod');
      await k8s.create('/api/v1/persistentvolumes', {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: `pv-${storageClass}` },
        spec: {
          storageClassName: storageClass,
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteOnce'],
          hostPath: { path: `/tmp/${storageClass}` },
          claimRef: { namespace: ns, name: claim },
        },
      });
      const pm = await waitForPhase(ns, 'move-patient', ['Completed', 'Failed'], 90_000);
      expect(pm.status).toMatchObject({ phase: 'Completed', checkpointPVC: claim });
    } finally {
      await k8s.delete(`/apis/storage.k8s.io/v1/storageclasses/${storageClass}`).catch(() => undefined);
      await k8s.delete(`/api/v1/persistentvolumes/pv-${storageClass}`).catch(() => undefined);
    }
  });
});

describe('slow deletions', () => {
  it('does not evict the source while the only copy is terminating (it stays Ready through its grace period)', async () => {
    const source = await createRunningPod(podManifest(ns, 'copy-dying', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
    await pdb('copy-dying', { maxUnavailable: 0 });
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-copy-dying', { podName: 'copy-dying', sourceNode: 'node-1', targetNode: 'node-2', timeoutSeconds: 60 }),
    );
    const blocked = await blockedInStep4('move-copy-dying');
    const copy = blocked.status!.targetPod!.name;
    // The copy is deleted, but a finalizer keeps it (Ready) as a kubelet would during its grace period.
    await hold(copy);
    await k8s.delete(paths.pod(ns, copy));
    expect((await getPod(ns, copy))!.status!.conditions!.find((c) => c.type === 'Ready')!.status).toBe('True');
    // The budget lifts a few seconds later (the operator retries a blocked eviction every ~1 s).
    await sleep(3_000);
    await unblock('copy-dying');
    const pm = await waitForPhase(ns, 'move-copy-dying', ['Completed', 'Failed'], 60_000);
    expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'TargetPodDeleted' });
    const after = await getPod(ns, 'copy-dying');
    expect(after!.metadata!.uid).toBe(source.metadata!.uid);
    expect(live(after)).toBe(true);
    await release(copy);
  });

  it('keeps the copy when a cancellation finds the source terminating, and says so', async () => {
    const manifest = podManifest(ns, 'source-dying', 'node-1', TRAINING_CONTAINERS.slice(0, 1));
    manifest.metadata!.finalizers = [HOLD];
    await createRunningPod(manifest);
    await pdb('source-dying', { maxUnavailable: 0 });
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-source-dying', { podName: 'source-dying', sourceNode: 'node-1', targetNode: 'node-2', timeoutSeconds: 60 }),
    );
    const blocked = await blockedInStep4('move-source-dying');
    const copy = blocked.status!.targetPod!.name;
    // Someone deletes the source (it terminates slowly), and the migration is cancelled.
    await k8s.delete(paths.pod(ns, 'source-dying'));
    await k8s.mergePatch(pmPath(ns, 'move-source-dying'), { metadata: { annotations: { 'migration.ai-storage.io/cancel': 'true' } } });
    const pm = await eventually('rollback recorded', async () => {
      const m = await getMigration(ns, 'move-source-dying');
      return condition(m, 'RolledBack') ? m : undefined;
    });
    expect(['Cancelled', 'Failed']).toContain(pm.status!.phase);
    expect(condition(pm, 'RolledBack')).toMatchObject({ status: 'False', reason: 'TargetPodKept' });
    expect(pm.status!.message).toMatch(new RegExp(`kept ${copy} on node-2 \\(Ready\\): source pod source-dying is being deleted`));
    await sleep(1_000);
    expect(live(await getPod(ns, copy))).toBe(true);
    await release('source-dying');
    await eventually('TargetPodKept event', async () =>
      (await eventsOf(ns, 'move-source-dying')).some((e) => e.reason === 'TargetPodKept') ? true : undefined,
    );
    expect(live(await getPod(ns, copy))).toBe(true);
    await unblock('source-dying');
  });
});

describe('a budget that blocks', () => {
  it('is asked again with backoff, not in a loop: its own status writes do not wake the migration', async () => {
    await createRunningPod(podManifest(ns, 'patient-budget', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
    await pdb('patient-budget', { maxUnavailable: 0 });
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-patient-budget', { podName: 'patient-budget', sourceNode: 'node-1', targetNode: 'node-2', timeoutSeconds: 300 }),
    );
    const blocked = await blockedInStep4('move-patient-budget');
    // Every write of its status, as the API server makes them, for 12 s.
    let writes = 0;
    const w = k8s.watch(
      pmPath(ns),
      { fieldSelector: 'metadata.name=move-patient-budget', resourceVersion: blocked.metadata.resourceVersion },
      (type) => {
        if (type === 'MODIFIED') writes += 1;
      },
    );
    await sleep(12_000);
    w.abort();
    await w.done.catch(() => undefined);
    process.stdout.write(`status writes in 12 s of a blocked eviction: ${writes}\n`);
    // Two writes per attempt (the intent, then its withdrawal), attempts backing off from 1 s:
    // about ten; a loop made dozens.
    expect(writes).toBeLessThan(16);
    await unblock('patient-budget');
    expect((await waitForPhase(ns, 'move-patient-budget', ['Completed', 'Failed'], 90_000)).status!.phase).toBe('Completed');
  });
});

describe('the deadline in step 4', () => {
  it('looks at the source first: evicted by this migration before a crash, the migration has moved the workload', async () => {
    await createRunningPod(podManifest(ns, 'crashed', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
    await pdb('crashed', { maxUnavailable: 0 });
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-crashed', {
        podName: 'crashed',
        sourceNode: 'node-1',
        targetNode: 'node-2',
        timeoutSeconds: 8,
        metricsDelaySeconds: 0,
      }),
    );
    const blocked = await blockedInStep4('move-crashed');
    await operator.stop('SIGKILL');
    // The state a crash at the worst moment leaves, made by hand: the operator had persisted
    // its intent to evict, the eviction went through, and it died before writing status.
    const pm = await getMigration(ns, 'move-crashed');
    pm.status!.sourcePod!.evictionRequestedAt = new Date().toISOString();
    await k8s.replace(paths.migrationStatus(ns, 'move-crashed'), pm);
    await unblock('crashed');
    await k8s.create(paths.eviction(ns, 'crashed'), {
      apiVersion: 'policy/v1',
      kind: 'Eviction',
      metadata: { name: 'crashed', namespace: ns },
    });
    await eventually('source gone', async () => ((await getPod(ns, 'crashed')) ? undefined : true));
    // Back only after the deadline.
    await sleep(Math.max(Date.parse(blocked.status!.startTime!) + 8_500 - Date.now(), 0));
    operator.start();
    const done = await waitForPhase(ns, 'move-crashed', ['Completed', 'Failed']);
    expect(done.status).toMatchObject({ phase: 'Completed' });
    expect(done.status!.steps![3]).toMatchObject({ state: 'Succeeded', message: expect.stringMatching(/source pod crashed evicted/) });
    expect(live(await getPod(ns, blocked.status!.targetPod!.name))).toBe(true);
  });

  it('states what it observed when it rolls back: the copy removed, the source still running', async () => {
    const source = await createRunningPod(podManifest(ns, 'late', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
    await pdb('late', { maxUnavailable: 0 });
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-late', { podName: 'late', sourceNode: 'node-1', targetNode: 'node-2', timeoutSeconds: 5 }),
    );
    const pm = await eventually('rollback recorded', async () => {
      const m = await waitForPhase(ns, 'move-late', ['Failed', 'Completed'], 60_000);
      return condition(m, 'RolledBack') ? m : undefined;
    });
    expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'Timeout' });
    expect(pm.status!.message).toMatch(
      /did not finish within spec\.timeoutSeconds \(5s\): eviction of source pod late is blocked: .*disruption budget/,
    );
    expect(pm.status!.message).toMatch(new RegExp(`removed pod ${pm.status!.targetPod!.name}; source pod late still runs on node-1$`));
    expect(condition(pm, 'RolledBack')).toMatchObject({ status: 'True', reason: 'SourcePodRunning' });
    const after = await getPod(ns, 'late');
    expect(after!.metadata!.uid).toBe(source.metadata!.uid);
    expect(after!.metadata!.annotations?.['migration.ai-storage.io/claimed-by']).toBeUndefined(); // claim released
    await unblock('late');
  });
});

describe('a permission taken away', () => {
  const sa = `noevict-${randomBytes(2).toString('hex')}`;
  let restricted: OperatorProcess;
  let refusedNs: string;

  beforeAll(async () => {
    refusedNs = await createNamespace('noevict');
    // The operator's own ClusterRole, less pods/eviction, for a ServiceAccount of its own.
    const role = await k8s.get<{ rules: { resources: string[] }[] }>(
      '/apis/rbac.authorization.k8s.io/v1/clusterroles/podmigration-manager',
    );
    await k8s.create('/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: sa },
      rules: role.rules.filter((r) => !r.resources.includes('pods/eviction')),
    });
    await k8s.create('/api/v1/namespaces/podmigration-system/serviceaccounts', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: sa },
    });
    await k8s.create('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: sa },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: sa },
      subjects: [{ kind: 'ServiceAccount', name: sa, namespace: 'podmigration-system' }],
    });
    const token = await k8s.create<{ status: { token: string } }>(`/api/v1/namespaces/podmigration-system/serviceaccounts/${sa}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 3600 },
    });
    const file = join(CLUSTER_DIR, `${sa}.kubeconfig`);
    writeFileSync(file, tokenKubeconfig(sa, token.status.token));
    restricted = new OperatorProcess(refusedNs, [], `${refusedNs}-restricted`, file);
    restricted.start();
  });

  afterAll(async () => {
    await restricted.stop('SIGTERM');
    await deleteNamespace(refusedNs);
    await k8s.delete(`/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${sa}`).catch(() => undefined);
    await k8s.delete(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${sa}`).catch(() => undefined);
    await k8s.delete(`/api/v1/namespaces/podmigration-system/serviceaccounts/${sa}`).catch(() => undefined);
  });

  it('never completes with both pods running: it retries the refused eviction, then rolls back naming the refusal', async () => {
    const source = await createRunningPod(podManifest(refusedNs, 'no-evict', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
    await k8s.create(
      pmPath(refusedNs),
      migration(refusedNs, 'move-no-evict', { podName: 'no-evict', sourceNode: 'node-1', targetNode: 'node-2', timeoutSeconds: 8 }),
    );
    const waiting = await eventually('EvictionRefused', async () => {
      const m = await getMigration(refusedNs, 'move-no-evict');
      return condition(m, 'Reconciling')?.reason === 'EvictionRefused' ? m : undefined;
    });
    expect(waiting.status!.phase).toBe('DeletingSourcePod');
    expect(waiting.status!.message).toMatch(/eviction of source pod no-evict was refused: .*forbidden/);
    const pm = await waitForPhase(refusedNs, 'move-no-evict', ['Completed', 'Failed'], 60_000);
    expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'SourcePodNotEvicted' });
    expect(pm.status!.message).toMatch(/could not be evicted within spec\.timeoutSeconds \(8s\).*cannot create resource "pods\/eviction"/);
    await eventually(
      'copy removed',
      async () => ((await podsOfMigration(refusedNs, 'move-no-evict')).length === 0 ? true : undefined),
      30_000,
    );
    const after = await getPod(refusedNs, 'no-evict');
    expect(after!.metadata!.uid).toBe(source.metadata!.uid);
    expect(live(after)).toBe(true);
  });
});

describe('DeleteBeforeCreate when the source cannot be recreated', () => {
  async function rwoMigration(namespace: string, name: string): Promise<PodMigration> {
    await k8s.create(paths.pvcs(namespace), {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: `${name}-data` },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    });
    const manifest = podManifest(namespace, name, 'node-1', TRAINING_CONTAINERS.slice(0, 1), {
      'kwok.podmigration.test/unready-on': 'node-2',
    });
    manifest.spec!.volumes = [{ name: 'data', persistentVolumeClaim: { claimName: `${name}-data` } }];
    await createRunningPod(manifest);
    await k8s.create(
      pmPath(namespace),
      migration(namespace, `move-${name}`, {
        podName: name,
        sourceNode: 'node-1',
        targetNode: 'node-2',
        strategy: 'DeleteBeforeCreate',
        readyTimeoutSeconds: 6,
      }),
    );
    // The source has been evicted and the copy made (it never becomes Ready on node-2).
    return eventually('copy created', async () => {
      const pm = await getMigration(namespace, `move-${name}`);
      return pm.status?.targetPod?.uid ? pm : undefined;
    });
  }

  it('lets a namespace being deleted go: no restore is attempted, the finalizer is released', async () => {
    const doomed = await createNamespace('doomed');
    const op = new OperatorProcess(doomed, [], `${doomed}-op`);
    op.start();
    try {
      await rwoMigration(doomed, 'rwo-doomed');
      await deleteNamespace(doomed);
      await eventually(
        'namespace gone',
        async () => {
          const r = await k8s.get(`/api/v1/namespaces/${doomed}`).catch((e: { code?: number }) => (e.code === 404 ? 'gone' : undefined));
          return r === 'gone' ? true : undefined;
        },
        60_000,
      );
      expect(op.log()).not.toMatch(/recreated the source pod/);
    } finally {
      await op.stop('SIGTERM');
    }
  });

  it('reports a refused restore (Pod Security) with a Warning Event and a condition, and releases the finalizer', async () => {
    const pm0 = await rwoMigration(ns, 'rwo-refused');
    expect(pm0.status!.phase).toBe('CreatingTargetPod');
    // From now on the namespace admits only "restricted" pods, which the source is not.
    await k8s.mergePatch(`/api/v1/namespaces/${ns}`, { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } });
    try {
      const pm = await eventually(
        'rollback recorded',
        async () => {
          const m = await getMigration(ns, 'move-rwo-refused');
          return condition(m, 'RolledBack') ? m : undefined;
        },
        90_000,
      );
      expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'TargetPodNotReady' });
      expect(condition(pm, 'RolledBack')).toMatchObject({ status: 'False', reason: 'SourcePodNotRestored' });
      expect(pm.status!.message).toMatch(/could not recreate source pod rwo-refused: .*violates PodSecurity.*status\.sourcePodManifest/);
      const events = await eventsOf(ns, 'move-rwo-refused');
      expect(events.filter((e) => e.reason === 'SourcePodNotRestored' && e.type === 'Warning').length).toBeGreaterThan(0);
      await eventually('finalizer released', async () =>
        (await getMigration(ns, 'move-rwo-refused')).metadata.finalizers?.length ? undefined : true,
      );
      expect(await podsOfMigration(ns, 'move-rwo-refused')).toEqual([]);
    } finally {
      await k8s.mergePatch(`/api/v1/namespaces/${ns}`, { metadata: { labels: { 'pod-security.kubernetes.io/enforce': null } } });
      // Pod Security admission reads the namespace from a cache: wait until it admits any pod again.
      await eventually(
        'namespace unrestricted again',
        async () =>
          await k8s.create(paths.pods(ns), podManifest(ns, 'probe', 'node-1', TRAINING_CONTAINERS.slice(0, 1)), { dryRun: 'All' }).then(
            () => true,
            () => undefined,
          ),
      );
    }
  });
});

describe('after the source is gone', () => {
  it('does not call a migration Completed when its copy failed meanwhile (TargetPodLost), and keeps the copy', async () => {
    await createRunningPod(podManifest(ns, 'copy-fails', 'node-1', TRAINING_CONTAINERS.slice(0, 1)));
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-copy-fails', { podName: 'copy-fails', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 4 }),
    );
    const collecting = await waitForPhase(ns, 'move-copy-fails', ['CollectingMetrics', 'Completed', 'Failed']);
    expect(collecting.status!.phase).toBe('CollectingMetrics');
    const copy = collecting.status!.targetPod!.name;
    const pod = (await getPod(ns, copy))!;
    await k8s.replace(paths.pod(ns, copy) + '/status', {
      ...pod,
      status: {
        ...pod.status,
        phase: 'Failed',
        reason: 'Evicted',
        message: 'the node was low on memory',
        conditions: pod.status!.conditions!.map((c) => (c.type === 'Ready' ? { ...c, status: 'False' } : c)),
      },
    });
    const pm = await eventually('rollback recorded', async () => {
      const m = await waitForPhase(ns, 'move-copy-fails', ['Completed', 'Failed']);
      return m.status!.phase === 'Completed' || condition(m, 'RolledBack') ? m : undefined;
    });
    expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'TargetPodLost' });
    expect(pm.status!.message).toMatch(/ended in phase Failed \(Evicted: the node was low on memory\), after the source pod was evicted/);
    expect(condition(pm, 'Ready')!.status).toBe('False');
    expect(condition(pm, 'RolledBack')).toMatchObject({ status: 'False', reason: 'TargetPodKept' });
    expect(pm.status!.message).toMatch(new RegExp(`kept ${copy} on node-2 \\(Failed: Evicted\\)`));
    expect(await getPod(ns, copy)).toBeDefined();
  });
});

describe('effective requests, as the scheduler counts them', () => {
  it('counts pod-level requests: a copy that keeps them saves nothing', async () => {
    const manifest = podManifest(ns, 'pod-level', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE);
    manifest.spec!.resources = { requests: { cpu: '2', memory: '2Gi' } };
    await createRunningPod(manifest);
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-pod-level', { podName: 'pod-level', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 }),
    );
    const pm = await waitForPhase(ns, 'move-pod-level', ['Completed', 'Failed']);
    expect(pm.status!.phase).toBe('Completed');
    expect(pm.status!.resources).toMatchObject({
      original: { cpu: '2000m', memory: '2Gi' },
      optimized: { cpu: '2000m', memory: '2Gi' },
      savings: { cpuPercent: 0, memoryPercent: 0 },
    });
  });

  it('counts native sidecars (restartable init containers), which the copy keeps', async () => {
    const manifest = podManifest(ns, 'sidecar', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE);
    manifest.spec!.initContainers = [
      { name: 'proxy', image: 'registry.example/proxy:1', restartPolicy: 'Always', resources: { requests: { cpu: '1', memory: '256Mi' } } },
    ];
    await createRunningPod(manifest);
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-sidecar', { podName: 'sidecar', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 }),
    );
    const pm = await waitForPhase(ns, 'move-sidecar', ['Completed', 'Failed']);
    expect(pm.status!.phase).toBe('Completed');
    // 1500m + 1 CPU -> 1000m + 1 CPU; 768Mi + 256Mi -> 256Mi + 256Mi.
    expect(pm.status!.resources).toMatchObject({
      original: { cpu: '2500m', memory: '1Gi' },
      optimized: { cpu: '2000m', memory: '512Mi' },
      savings: { cpuPercent: 20, memoryPercent: 50 },
    });
  });
});
