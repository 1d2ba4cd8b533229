// The happy path on the real control plane, without and with a checkpoint claim.
import type { V1ManagedFieldsEntry, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import {
  DOWNLOADER_DONE,
  TRAINING_CONTAINERS,
  claimsOfMigration,
  createRunningPod,
  eventsOf,
  eventually,
  getMigration,
  getPod,
  k8s,
  kubectl,
  operatorNamespace,
  podManifest,
  podsOfMigration,
  sleep,
  waitForPhase,
} from './helpers';

const { ns, operator } = operatorNamespace('happy');

function applyMigration(name: string, podName: string, extra: string): void {
  const r = kubectl(
    ['apply', '-f', '-'],
    `apiVersion: migration.ai-storage.io/v1alpha1
kind: PodMigration
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  podName: ${podName}
  sourceNode: node-1
  targetNode: node-2
  metricsDelaySeconds: 1
${extra}`,
  );
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
}

it('reports ready on /readyz once its caches have synced, and live on /healthz', async () => {
  const port = await operator.port('healthz');
  const ready = await eventually('readyz 200', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/readyz`);
    return r.status === 200 ? r : undefined;
  });
  expect(await ready.text()).toBe('ok\n');
  expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  expect((await fetch(`http://127.0.0.1:${port}/nothing`)).status).toBe(404);
});

it('moves a pod to the target node keeping only its running containers', async () => {
  const source = await createRunningPod(podManifest(ns, 'trainer', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
  applyMigration('move-trainer', 'trainer', '');

  const pm = await waitForPhase(ns, 'move-trainer', ['Completed', 'Failed']);
  const s = pm.status!;
  expect(s).toMatchObject({
    phase: 'Completed',
    step: 5,
    progress: '5/5',
    observedGeneration: 1,
    sourcePod: { name: 'trainer', uid: source.metadata!.uid, node: 'node-1' },
    targetPod: { node: 'node-2' },
    containers: [
      { name: 'trainer', state: 'running', restartCount: 0, migrated: true },
      { name: 'exporter', state: 'running', restartCount: 0, migrated: true },
      { name: 'downloader', state: 'terminated', reason: 'Completed', restartCount: 0, migrated: false },
    ],
    resources: {
      original: { cpu: '1500m', memory: '768Mi' },
      optimized: { cpu: '1000m', memory: '256Mi' },
      savings: { cpuPercent: 33.3, memoryPercent: 66.7, cpu: '33.3%', memory: '66.7%', basis: 'requests' },
      usage: { available: false },
    },
  });
  expect(s.reason ?? '').toBe('');
  expect(s.checkpointPVC).toBeUndefined();
  expect(s.resources!.usage!.message).toMatch(/metrics\.k8s\.io/);
  expect(s.steps!.map((x) => [x.name, x.state])).toEqual([
    ['CaptureState', 'Succeeded'],
    ['Checkpoint', 'Skipped'],
    ['CreateTargetPod', 'Succeeded'],
    ['DeleteSourcePod', 'Succeeded'],
    ['CollectMetrics', 'Succeeded'],
  ]);
  for (const step of s.steps!) {
    expect(Date.parse(step.completionTime!)).toBeGreaterThanOrEqual(Date.parse(step.startTime!));
  }
  // Each step ends when its work ended, and the next starts there: step 1 (reading the pod,
  // claiming it) and step 4 (the eviction) took time of their own.
  for (let i = 1; i < s.steps!.length; i++) expect(s.steps![i].startTime).toBe(s.steps![i - 1].completionTime);
  for (const i of [0, 3]) expect(Date.parse(s.steps![i].completionTime!)).toBeGreaterThan(Date.parse(s.steps![i].startTime!));
  expect(s.steps![0].startTime).toBe(s.startTime);
  expect(s.steps![4].completionTime).toBe(s.completionTime);
  // Duration is computed from the recorded times, and step 5 waited its stabilisation delay.
  const start = Date.parse(s.startTime!);
  const end = Date.parse(s.completionTime!);
  // Stated to a tenth of a second: within half a tenth of what the timestamps say.
  expect(Math.abs(s.durationSeconds! - (end - start) / 1000)).toBeLessThanOrEqual(0.05 + 1e-9);
  const step5 = s.steps![4];
  expect(Date.parse(step5.completionTime!) - Date.parse(step5.startTime!)).toBeGreaterThanOrEqual(1000);
  const conditions = Object.fromEntries(s.conditions!.map((c) => [c.type, c.status]));
  expect(conditions).toEqual({ Ready: 'True', Reconciling: 'False', Stalled: 'False' });

  // What the API server holds: one new pod on node-2 with the two running containers ...
  const targets = await podsOfMigration(ns, 'move-trainer');
  expect(targets).toHaveLength(1);
  const target = targets[0];
  expect(target.metadata!.name).toBe(s.targetPod!.name);
  expect(target.metadata!.uid).toBe(s.targetPod!.uid);
  expect(target.metadata!.name).toMatch(/^trainer-mig-[0-9a-f]{5}$/);
  expect(target.spec!.nodeName).toBe('node-2');
  expect(target.spec!.containers.map((c) => c.name)).toEqual(['trainer', 'exporter']);
  expect(target.metadata!.labels).toMatchObject({ app: 'trainer', 'migration.ai-storage.io/migration': 'move-trainer' });
  expect(target.metadata!.annotations).toMatchObject({ 'migration.ai-storage.io/migrated-from': 'trainer' });
  expect(target.metadata!.ownerReferences).toBeUndefined();
  expect(target.spec!.volumes!.some((v) => v.name === 'checkpoint-volume')).toBe(false);
  expect(target.status!.conditions!.find((c) => c.type === 'Ready')!.status).toBe('True');
  // The operator's writes are named after it (its User-Agent), in managedFields as in audit logs.
  expect(target.metadata!.managedFields!.map((f) => f.manager)).toContain('podmigration-operator');
  const { managedFields } = (await getMigration(ns, 'move-trainer')).metadata as { managedFields?: V1ManagedFieldsEntry[] };
  const managers = managedFields!.map((f) => `${f.manager} ${f.operation} ${f.subresource ?? ''}`.trim());
  expect(managers).toContain('podmigration-operator Update status');
  expect(managers).not.toContain('unknown Update status');

  // ... and the source pod is gone.
  await eventually('source pod gone', async () => ((await getPod(ns, 'trainer')) ? undefined : true), 30_000);

  // An Event for every step, as it ends (its start is in status.steps).
  // Events are recorded right after the status write that they describe.
  const events = await eventually(
    'all step events',
    async () => {
      const list = await eventsOf(ns, 'move-trainer');
      return list.some((e) => e.reason === 'MigrationCompleted') ? list : undefined;
    },
    10_000,
  );
  const count = (reason: string) => events.filter((e) => e.reason === reason).length;
  expect(count('StepStarted')).toBe(0);
  expect(count('StepSucceeded')).toBe(3);
  expect(count('StepSkipped')).toBe(1);
  expect(count('MigrationCompleted')).toBe(1);
});

it('creates, mounts and keeps the checkpoint claim when preservePV is true', async () => {
  await createRunningPod(podManifest(ns, 'ckpt', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
  applyMigration('move-ckpt', 'ckpt', '  preservePV: true\n  checkpoint:\n    size: 2Gi\n');

  const pm = await waitForPhase(ns, 'move-ckpt', ['Completed', 'Failed']);
  const s = pm.status!;
  expect(s.phase).toBe('Completed');
  const expectedName = `checkpoint-ckpt-${Math.floor(Date.parse(s.startTime!) / 1000)}`;
  expect(s.checkpointPVC).toBe(expectedName);
  expect(s.steps![1]).toMatchObject({ name: 'Checkpoint', state: 'Succeeded' });

  const claim = await k8s.get<V1PersistentVolumeClaim>(`/api/v1/namespaces/${ns}/persistentvolumeclaims/${expectedName}`);
  expect(claim.metadata!.labels).toEqual({
    app: 'ai-storage-orchestrator',
    component: 'migration-checkpoint',
    'migration.ai-storage.io/migration': 'move-ckpt',
  });
  expect(claim.spec!.accessModes).toEqual(['ReadWriteOnce']);
  expect(claim.spec!.resources!.requests!.storage).toBe('2Gi');
  expect(await claimsOfMigration(ns, 'move-ckpt')).toHaveLength(1);

  const [target] = await podsOfMigration(ns, 'move-ckpt');
  expect(target.spec!.volumes).toContainEqual({ name: 'checkpoint-volume', persistentVolumeClaim: { claimName: expectedName } });
  for (const c of target.spec!.containers) {
    expect(c.volumeMounts).toContainEqual(expect.objectContaining({ name: 'checkpoint-volume', mountPath: '/migration-checkpoint' }));
  }
  await eventually('source pod gone', async () => ((await getPod(ns, 'ckpt')) ? undefined : true), 30_000);
  // The claim is data: it stays after the migration.
  expect((await claimsOfMigration(ns, 'move-ckpt')).map((c) => c.metadata.name)).toEqual([expectedName]);
});

it('keeps the pod spec fields it does not manage', async () => {
  const pod = podManifest(ns, 'rich', 'node-1', TRAINING_CONTAINERS.slice(0, 1));
  pod.spec!.containers[0].env = [{ name: 'EPOCHS', value: '12' }];
  pod.spec!.containers[0].args = ['--lr', '0.01'];
  pod.spec!.volumes = [{ name: 'scratch', emptyDir: {} }];
  pod.spec!.containers[0].volumeMounts = [{ name: 'scratch', mountPath: '/scratch' }];
  pod.spec!.tolerations = [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }];
  await createRunningPod(pod);
  applyMigration('move-rich', 'rich', '');
  expect((await waitForPhase(ns, 'move-rich', ['Completed', 'Failed'])).status!.phase).toBe('Completed');
  const [target] = await podsOfMigration(ns, 'move-rich');
  const c = target.spec!.containers[0];
  expect(c.env).toEqual([{ name: 'EPOCHS', value: '12' }]);
  expect(c.args).toEqual(['--lr', '0.01']);
  expect(c.volumeMounts).toContainEqual(expect.objectContaining({ name: 'scratch', mountPath: '/scratch' }));
  expect(target.spec!.tolerations).toContainEqual(expect.objectContaining({ key: 'gpu', operator: 'Exists' }));
  // The service-account token volume is injected afresh by admission, once.
  const tokenVolumes = (target.spec!.volumes ?? []).filter((v) => v.name.startsWith('kube-api-access-'));
  expect(tokenVolumes).toHaveLength(1);
});

it('retries status writes that conflict with other writers, never failing on them', async () => {
  await createRunningPod(podManifest(ns, 'contended', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
  applyMigration('move-contended', 'contended', '  metricsDelaySeconds: 2\n');
  // Another writer keeps changing the object, so the operator's writes (which carry the
  // resourceVersion it read) meet 409 Conflict.
  let writing = true;
  let writes = 0;
  const writer = (async () => {
    while (writing) {
      await k8s
        .mergePatch(`/apis/migration.ai-storage.io/v1alpha1/namespaces/${ns}/podmigrations/move-contended`, {
          metadata: { labels: { touched: String(writes++) } },
        })
        .catch(() => undefined);
      await sleep(10);
    }
  })();
  const pm = await waitForPhase(ns, 'move-contended', ['Completed', 'Failed']);
  writing = false;
  await writer;
  expect(pm.status!.phase).toBe('Completed');
  expect(writes).toBeGreaterThan(10);
  // The conflicts happened (on a status write, retried at once, or on the finalizer's patch,
  // retried by the queue), and were retried rather than reported as errors.
  expect(operator.log()).toMatch(/status write conflicted with a metadata change|"level":20[^\n]*the object has been modified/);
  expect(operator.log()).not.toMatch(/"level":50[^\n]*modified/);
});

it('exposes Prometheus metrics computed from what it did', async () => {
  const port = await operator.port('metrics');
  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    return res.text();
  };
  const read = (text: string, line: string) =>
    Number(
      text
        .split('\n')
        .find((l) => l.startsWith(line))
        ?.slice(line.length)
        .trim(),
    );
  // The operator counts a migration right after the status write the test saw, and the
  // reconcile that wrote it once it has returned (after the finalizer is released).
  const text = await eventually(
    'four completions counted, and their reconciles ended',
    async () => {
      const t = await scrape();
      const done = read(t, 'podmigration_migrations_total{result="Completed",reason=""}') === 4;
      return done && read(t, 'controller_runtime_active_workers{controller="podmigration"}') === 0 ? t : undefined;
    },
    10_000,
  );
  const value = (line: string) => read(text, line);
  // Four migrations above completed: trainer and ckpt (500m and 512Mi dropped each),
  // rich (nothing dropped) and contended (500m, 512Mi).
  expect(value('podmigration_migrations_total{result="Completed",reason=""}')).toBe(4);
  expect(value('podmigration_migration_duration_seconds_count{result="Completed"}')).toBe(4);
  expect(value('podmigration_cpu_requests_saved_cores_total')).toBeCloseTo(1.5, 6);
  expect(value('podmigration_memory_requests_saved_bytes_total')).toBe(3 * 512 * 2 ** 20);
  expect(value('podmigration_step_duration_seconds_count{step="CreateTargetPod",state="Succeeded"}')).toBe(4);
  expect(value('podmigration_step_duration_seconds_count{step="Checkpoint",state="Skipped"}')).toBe(3);
  expect(value('podmigration_migrations_in_flight')).toBe(0);
  // Named as controller-runtime and client-go name them; process metrics unprefixed.
  const c = 'controller="podmigration"';
  expect(value(`workqueue_depth{${c},name="podmigration"}`)).toBe(0);
  expect(value(`workqueue_adds_total{${c},name="podmigration"}`)).toBeGreaterThanOrEqual(4);
  expect(value(`workqueue_work_duration_seconds_count{${c},name="podmigration"}`)).toBeGreaterThanOrEqual(4);
  expect(value(`controller_runtime_reconcile_total{${c},result="success"}`)).toBeGreaterThanOrEqual(4);
  expect(value(`controller_runtime_reconcile_time_seconds_count{${c}}`)).toBeGreaterThanOrEqual(4);
  expect(value(`controller_runtime_max_concurrent_reconciles{${c}}`)).toBe(4);
  expect(value(`controller_runtime_active_workers{${c}}`)).toBe(0);
  expect(text).toMatch(/^controller_runtime_reconcile_errors_total\{controller="podmigration"\} \d+$/m);
  expect(text).toMatch(/^podmigration_build_info\{version="\d+\.\d+\.\d+",nodejs_version="v\d+\.\d+\.\d+"\} 1$/m);
  expect(text).toMatch(/^process_cpu_seconds_total /m);
  expect(text).toMatch(/^nodejs_heap_size_used_bytes /m);
  expect(text).not.toMatch(/^podmigration_process_/m);
});
