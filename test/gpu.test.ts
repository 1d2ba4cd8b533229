// GPU and AI pods on the local control plane: kwok nodes with nvidia.com/gpu capacity,
// ResourceSlices and a DeviceClass for Dynamic Resource Allocation, kube-scheduler
// allocating devices and kube-controller-manager's resourceclaim controller making claims
// from templates. A move never kills another workload, never drops the work itself, and
// counts the devices it frees.
import { randomBytes } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigration } from '../src/api/types';
import { paths } from '../src/kube/client';
import {
  createRunningPod,
  eventsOf,
  eventually,
  followPods,
  getMigration,
  getPod,
  k8s,
  kubectl,
  kwokNode,
  migration,
  operatorNamespace,
  pmPath,
  podsOfMigration,
  sleep,
  waitForPhase,
} from './helpers';

const { ns, operator } = operatorNamespace('gpu');
const tag = randomBytes(2).toString('hex');
const DRIVER = `gpu-${tag}.test.podmigration.io`;
const CLASS = `gpu-${tag}`;
const RESOURCE = '/apis/resource.k8s.io/v1';
const nodes = { a: `gpu-a-${tag}`, b: `gpu-b-${tag}`, c: `gpu-c-${tag}`, small: `small-${tag}` };
const created: string[] = [];

beforeAll(async () => {
  await kwokNode(nodes.a, { cpu: '16', memory: '64Gi', extended: { 'nvidia.com/gpu': '2' }, labels: { pool: `gpu-${tag}` } });
  await kwokNode(nodes.b, { cpu: '16', memory: '64Gi', extended: { 'nvidia.com/gpu': '2' }, labels: { pool: `gpu-${tag}` } });
  await kwokNode(nodes.c, { cpu: '16', memory: '64Gi', extended: { 'nvidia.com/gpu': '2' } });
  await kwokNode(nodes.small, { cpu: '2', memory: '8Gi' });
  // DRA: one device on each GPU node, a class that selects the driver, a template of one device.
  await k8s.create(`${RESOURCE}/deviceclasses`, {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'DeviceClass',
    metadata: { name: CLASS },
    spec: { selectors: [{ cel: { expression: `device.driver == "${DRIVER}"` } }] },
  });
  for (const n of [nodes.a, nodes.b]) {
    await k8s.create(`${RESOURCE}/resourceslices`, {
      apiVersion: 'resource.k8s.io/v1',
      kind: 'ResourceSlice',
      metadata: { name: `${n}-${tag}` },
      spec: {
        driver: DRIVER,
        nodeName: n,
        pool: { name: n, generation: 1, resourceSliceCount: 1 },
        devices: [{ name: 'gpu-0' }, { name: 'gpu-1' }],
      },
    });
  }
  await k8s.create(`${RESOURCE}/namespaces/${ns}/resourceclaimtemplates`, {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaimTemplate',
    metadata: { name: 'one-gpu' },
    spec: { spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: CLASS } }] } } },
  });
  for (const [name, value] of [
    [`high-${tag}`, 1000],
    [`low-${tag}`, 10],
  ] as const) {
    await k8s.create('/apis/scheduling.k8s.io/v1/priorityclasses', {
      apiVersion: 'scheduling.k8s.io/v1',
      kind: 'PriorityClass',
      metadata: { name },
      value,
    });
    created.push(`/apis/scheduling.k8s.io/v1/priorityclasses/${name}`);
  }
});

afterAll(async () => {
  for (const path of created) await k8s.delete(path).catch(() => undefined);
  await k8s.delete(`${RESOURCE}/deviceclasses/${CLASS}`).catch(() => undefined);
  for (const n of [nodes.a, nodes.b]) await k8s.delete(`${RESOURCE}/resourceslices/${n}-${tag}`).catch(() => undefined);
  for (const n of Object.values(nodes)) await k8s.delete(`/api/v1/nodes/${n}`).catch(() => undefined);
});

const ready = (p?: V1Pod) =>
  !!p && !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const container = (name: string, requests: Record<string, string>, claims?: string[]) => ({
  name,
  image: `registry.example/${name}:1`,
  resources: {
    requests,
    ...(requests['nvidia.com/gpu'] ? { limits: { 'nvidia.com/gpu': requests['nvidia.com/gpu'] } } : {}),
    ...(claims ? { claims: claims.map((n) => ({ name: n })) } : {}),
  },
});

/** A pod placed by kube-scheduler (so that DRA claims are allocated) on one of the two GPU nodes. */
async function scheduledPod(
  name: string,
  spec: Partial<V1Pod['spec']> & Pick<NonNullable<V1Pod['spec']>, 'containers'>,
  annotations: Record<string, string> = {},
): Promise<V1Pod> {
  await k8s.create(paths.pods(ns), {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { app: name }, annotations },
    spec: { restartPolicy: 'Never', terminationGracePeriodSeconds: 1, nodeSelector: { pool: `gpu-${tag}` }, ...spec },
  });
  return eventually(
    `${name} Running`,
    async () => {
      const p = await getPod(ns, name);
      return p?.status?.phase === 'Running' ? p : undefined;
    },
    60_000,
  );
}

/** The other GPU node. */
const other = (node: string) => (node === nodes.a ? nodes.b : nodes.a);

async function move(name: string, podName: string, from: string, to: string, extra: object = {}): Promise<PodMigration> {
  await k8s.create(pmPath(ns), migration(ns, name, { podName, sourceNode: from, targetNode: to, metricsDelaySeconds: 0, ...extra }));
  return waitForPhase(ns, name, ['Completed', 'Failed'], 120_000);
}

const rolledBack = async (name: string) =>
  eventually(
    `${name} RolledBack`,
    async () => (await getMigration(ns, name)).status?.conditions?.find((c) => c.type === 'RolledBack'),
    90_000,
  );

describe('preemption', () => {
  it('never preempts by default: the copy cannot displace a lower-priority pod, which lives on', async () => {
    // The target is full of a low-priority pod that takes its time to stop (a 20 s grace period).
    await k8s.create(paths.pods(ns), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'victim', namespace: ns, labels: { app: 'victim' }, annotations: { 'kwok.podmigration.test/graceful': 'true' } },
      spec: {
        priorityClassName: `low-${tag}`,
        nodeName: nodes.small,
        terminationGracePeriodSeconds: 20,
        containers: [container('batch', { cpu: '1500m', memory: '1Gi' })],
      },
    });
    await eventually('victim Ready', async () => (ready(await getPod(ns, 'victim')) ? true : undefined));
    await createRunningPod({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'serve', namespace: ns, labels: { app: 'serve' } },
      spec: {
        priorityClassName: `high-${tag}`,
        nodeName: nodes.a,
        terminationGracePeriodSeconds: 1,
        containers: [container('model', { cpu: '1', memory: '1Gi' })],
      },
    });
    let touched = 0;
    const follow = await followPods(
      ns,
      (pods) => (touched += pods.some((p) => p.metadata?.name === 'victim' && p.metadata.deletionTimestamp) ? 1 : 0),
    );
    const pm = await move('move-serve', 'serve', nodes.a, nodes.small);
    await sleep(1_000);
    await follow.stop();
    expect([pm.status!.phase, pm.status!.reason]).toEqual(['Failed', 'TargetPodUnschedulable']);
    expect(pm.status!.message).toMatch(/Insufficient cpu/);
    expect(touched).toBe(0);
    // Its copy asked for a class of the same priority that never preempts.
    const events = await eventsOf(ns, 'move-serve');
    expect(events.some((e) => e.reason === 'TargetPodRemoved')).toBe(true);
    const pc = await k8s.get<{ value: number; preemptionPolicy: string }>(
      '/apis/scheduling.k8s.io/v1/priorityclasses/podmigration-never-preempts-1000',
    );
    expect([pc.value, pc.preemptionPolicy]).toEqual([1000, 'Never']);
    created.push('/apis/scheduling.k8s.io/v1/priorityclasses/podmigration-never-preempts-1000');
    expect((await getPod(ns, 'serve'))!.spec!.nodeName).toBe(nodes.a);
  });

  it('with allowPreemption, waits while the copy is nominated and its victim takes its grace period, then completes', async () => {
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-serve-2', {
        podName: 'serve',
        sourceNode: nodes.a,
        targetNode: nodes.small,
        metricsDelaySeconds: 0,
        allowPreemption: true,
      }),
    );
    await eventually(
      'victim preempted',
      async () => ((await getPod(ns, 'victim'))?.metadata?.deletionTimestamp ? true : undefined),
      60_000,
    );
    const [copy] = await eventually('copy nominated', async () => {
      const pods = await podsOfMigration(ns, 'move-serve-2');
      return pods[0]?.status?.nominatedNodeName === nodes.small ? pods : undefined;
    });
    expect(copy.spec!.priorityClassName).toBe(`high-${tag}`);
    await sleep(8_000); // longer than the scheduler's grace: a nomination is progress, not a verdict
    const waiting = await getMigration(ns, 'move-serve-2');
    expect([waiting.status!.phase, waiting.status!.message]).toEqual(['CreatingTargetPod', expect.stringMatching(/nominated to node/)]);
    const pm = await waitForPhase(ns, 'move-serve-2', ['Completed', 'Failed'], 90_000);
    expect(pm.status!.phase).toBe('Completed');
    expect((await podsOfMigration(ns, 'move-serve-2'))[0].spec!.nodeName).toBe(nodes.small);
  });
});

describe('only finished work is dropped', () => {
  const trainerPod = (name: string) =>
    createRunningPod({
      apiVersion: 'v1',
      kind: 'Pod',
      // The trainer crash-loops after a CUDA out-of-memory; the metrics sidecar runs.
      metadata: { name, namespace: ns, labels: { app: name }, annotations: { 'kwok.podmigration.test/crashlooping': 'trainer' } },
      spec: {
        nodeName: nodes.a,
        restartPolicy: 'Always',
        terminationGracePeriodSeconds: 1,
        containers: [
          container('trainer', { cpu: '4', memory: '16Gi', 'nvidia.com/gpu': '1' }),
          container('metrics', { cpu: '100m', memory: '64Mi' }),
        ],
      },
    });

  it('keeps a crash-looping trainer: the move fails on the copy, the source is untouched, nothing is called saved', async () => {
    const source = await trainerPod('llm');
    const pm = await move('move-llm', 'llm', nodes.a, nodes.b);
    expect([pm.status!.phase, pm.status!.reason]).toEqual(['Failed', 'TargetPodStartFailed']);
    expect(pm.status!.message).toMatch(/container trainer .* CrashLoopBackOff/);
    expect(pm.status!.containers).toEqual([
      expect.objectContaining({ name: 'trainer', state: 'waiting', reason: 'CrashLoopBackOff', exitCode: 1, migrated: true }),
      expect.objectContaining({ name: 'metrics', state: 'running', migrated: true }),
    ]);
    expect(pm.status!.resources?.savings).toBeUndefined();
    expect((await getPod(ns, 'llm'))!.metadata!.uid).toBe(source.metadata!.uid);
  });

  it('drops it only when asked (dropCrashedContainers), with a Warning Event naming it, and counts the GPU freed', async () => {
    await trainerPod('llm-2');
    const pm = await move('move-llm-2', 'llm-2', nodes.a, nodes.b, { dropCrashedContainers: true });
    expect(pm.status!.phase).toBe('Completed');
    expect(pm.status!.containers!.map((c) => [c.name, c.migrated])).toEqual([
      ['trainer', false],
      ['metrics', true],
    ]);
    const events = await eventually(
      'CrashedContainerDropped',
      async () => {
        const e = (await eventsOf(ns, 'move-llm-2')).filter((x) => x.reason === 'CrashedContainerDropped');
        return e.length ? e : undefined;
      },
      10_000,
    );
    expect(events[0]).toMatchObject({
      type: 'Warning',
      message: expect.stringMatching(/container trainer crashed \(CrashLoopBackOff, exit code 1\)/),
    });
    expect(pm.status!.resources).toMatchObject({
      original: { 'nvidia.com/gpu': '1' },
      savings: { freed: { 'nvidia.com/gpu': '1' }, devices: '1 nvidia.com/gpu' },
    });
    expect(pm.status!.resources!.optimized!['nvidia.com/gpu']).toBeUndefined();
  });

  it('frees the GPU of a finished preprocessing container, and counts it in status, -o wide and the metrics', async () => {
    await createRunningPod({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'prep',
        namespace: ns,
        labels: { app: 'prep' },
        annotations: { 'kwok.podmigration.test/terminated': 'preprocess' },
      },
      spec: {
        nodeName: nodes.a,
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        containers: [
          container('preprocess', { cpu: '2', memory: '8Gi', 'nvidia.com/gpu': '1' }),
          container('serve', { cpu: '500m', memory: '1Gi' }),
        ],
      },
    });
    const pm = await move('move-prep', 'prep', nodes.a, nodes.b);
    expect(pm.status).toMatchObject({
      phase: 'Completed',
      resources: {
        original: { cpu: '2500m', memory: '9Gi', 'nvidia.com/gpu': '1' },
        optimized: { cpu: '500m', memory: '1Gi' },
        savings: { cpuPercent: 80, freed: { 'nvidia.com/gpu': '1' }, devices: '1 nvidia.com/gpu' },
      },
    });
    expect(pm.status!.message).toMatch(/freed 1 nvidia\.com\/gpu/);
    expect(kubectl(['get', 'podmigration', 'move-prep', '-n', ns, '-o', 'wide']).stdout).toMatch(/FREED[\s\S]*1 nvidia\.com\/gpu/);
    const port = await operator.port('metrics');
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/podmigration_device_requests_saved_total\{resource="nvidia.com\/gpu"\} [1-9]/);
  });
});

describe('Dynamic Resource Allocation', () => {
  it('leaves behind a claim only a finished container used: its device is freed and counted', async () => {
    const pod = await scheduledPod(
      'dra-prep',
      {
        resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'one-gpu' }],
        containers: [container('preprocess', { cpu: '1', memory: '1Gi' }, ['gpu']), container('serve', { cpu: '500m', memory: '1Gi' })],
      },
      { 'kwok.podmigration.test/terminated': 'preprocess' },
    );
    const pm = await move('move-dra-prep', 'dra-prep', pod.spec!.nodeName!, other(pod.spec!.nodeName!));
    expect(pm.status!.phase).toBe('Completed');
    const [copy] = await podsOfMigration(ns, 'move-dra-prep');
    expect(copy.spec!.resourceClaims ?? []).toEqual([]);
    expect(pm.status!.resources).toMatchObject({ original: { devices: 1 }, savings: { freed: { devices: '1' }, devices: '1 DRA device' } });
    expect(pm.status!.resources!.optimized!.devices).toBeUndefined();
  });

  it("gives a copy that keeps a claim's user a fresh claim from the template, allocated on the target", async () => {
    const pod = await scheduledPod('dra-train', {
      resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'one-gpu' }],
      containers: [container('trainer', { cpu: '1', memory: '1Gi' }, ['gpu'])],
    });
    const to = other(pod.spec!.nodeName!);
    const pm = await move('move-dra-train', 'dra-train', pod.spec!.nodeName!, to);
    expect(pm.status).toMatchObject({ phase: 'Completed', resources: { original: { devices: 1 }, optimized: { devices: 1 } } });
    const [copy] = await podsOfMigration(ns, 'move-dra-train');
    expect(copy.spec!.resourceClaims).toEqual([{ name: 'gpu', resourceClaimTemplateName: 'one-gpu' }]);
    const claim = await k8s.get<{
      status: { allocation: { nodeSelector: { nodeSelectorTerms: { matchFields: { values: string[] }[] }[] } } };
    }>(`${RESOURCE}/namespaces/${ns}/resourceclaims/${copy.status!.resourceClaimStatuses![0].resourceClaimName}`);
    expect(JSON.stringify(claim.status.allocation.nodeSelector)).toContain(to);
  });

  it('refuses to move one of two pods that share a claim allocated on the source node (ResourceClaimPinned), also deleting first', async () => {
    await k8s.create(`${RESOURCE}/namespaces/${ns}/resourceclaims`, {
      apiVersion: 'resource.k8s.io/v1',
      kind: 'ResourceClaim',
      metadata: { name: 'team-gpu' },
      spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: CLASS } }] } },
    });
    const first = await scheduledPod('shared-1', {
      resourceClaims: [{ name: 'gpu', resourceClaimName: 'team-gpu' }],
      containers: [container('worker', { cpu: '100m', memory: '64Mi' }, ['gpu'])],
    });
    await scheduledPod('shared-2', {
      resourceClaims: [{ name: 'gpu', resourceClaimName: 'team-gpu' }],
      containers: [container('worker', { cpu: '100m', memory: '64Mi' }, ['gpu'])],
    });
    const [from, to] = [first.spec!.nodeName!, other(first.spec!.nodeName!)];
    for (const [name, strategy] of [
      ['move-shared', 'CreateBeforeDelete'],
      ['move-shared-first', 'DeleteBeforeCreate'],
    ] as const) {
      const pm = await move(name, 'shared-1', from, to, { strategy });
      expect([pm.status!.phase, pm.status!.reason, pm.status!.step]).toEqual(['Failed', 'ResourceClaimPinned', 1]);
      expect(pm.status!.message).toMatch(
        new RegExp(`ResourceClaim team-gpu \\(the pod's claim gpu\\) is allocated devices on ${from}, which cannot serve node ${to}`),
      );
    }
    expect((await getMigration(ns, 'move-shared-first')).status!.message).toMatch(/shared with pods shared-2.*downtime for nothing/);
    expect(ready(await getPod(ns, 'shared-1'))).toBe(true);
  });
});

describe('DeleteBeforeCreate', () => {
  it('refuses a target without the GPUs asked for, before the eviction (TargetLacksDevice)', async () => {
    const source = await createRunningPod({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'rwo-gpu', namespace: ns, labels: { app: 'rwo-gpu' } },
      spec: {
        nodeName: nodes.a,
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        containers: [container('trainer', { cpu: '1', memory: '1Gi', 'nvidia.com/gpu': '1' })],
      },
    });
    const pm = await move('move-rwo-gpu', 'rwo-gpu', nodes.a, nodes.small, { strategy: 'DeleteBeforeCreate' });
    expect([pm.status!.phase, pm.status!.reason, pm.status!.step]).toEqual(['Failed', 'TargetLacksDevice', 1]);
    expect(pm.status!.message).toMatch(new RegExp(`node ${nodes.small} has no nvidia.com/gpu`));
    expect((await getPod(ns, 'rwo-gpu'))!.metadata!.uid).toBe(source.metadata!.uid);
  });

  it('refuses a target no ResourceSlice offers the DeviceClass its claim asks for, before the eviction (TargetLacksDevice)', async () => {
    const pod = await scheduledPod('dra-rwo', {
      resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'one-gpu' }],
      containers: [container('trainer', { cpu: '100m', memory: '64Mi' }, ['gpu'])],
    });
    const pm = await move('move-dra-rwo', 'dra-rwo', pod.spec!.nodeName!, nodes.c, { strategy: 'DeleteBeforeCreate' });
    expect([pm.status!.phase, pm.status!.reason, pm.status!.step]).toEqual(['Failed', 'TargetLacksDevice', 1]);
    expect(pm.status!.message).toMatch(new RegExp(`no ResourceSlice offers node ${nodes.c} a device of class ${CLASS}`));
    expect((await getPod(ns, 'dra-rwo'))!.metadata!.uid).toBe(pod.metadata!.uid);
  });

  it('says plainly when the source recreated by a rollback cannot run: its GPUs were taken meanwhile', async () => {
    await createRunningPod({
      apiVersion: 'v1',
      kind: 'Pod',
      // On the target the copy fails; on its own node it runs.
      metadata: { name: 'greedy', namespace: ns, labels: { app: 'greedy' }, annotations: { 'kwok.podmigration.test/fail-on': nodes.b } },
      spec: {
        nodeName: nodes.c,
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        containers: [container('trainer', { cpu: '1', memory: '1Gi', 'nvidia.com/gpu': '2' })],
      },
    });
    // A queued pod waits for the GPUs of that node.
    await k8s.create(paths.pods(ns), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'queued', namespace: ns, labels: { app: 'queued' } },
      spec: {
        nodeSelector: { 'kubernetes.io/hostname': nodes.c },
        terminationGracePeriodSeconds: 1,
        containers: [container('job', { cpu: '1', memory: '1Gi', 'nvidia.com/gpu': '2' })],
      },
    });
    const pm = await move('move-greedy', 'greedy', nodes.c, nodes.b, { strategy: 'DeleteBeforeCreate' });
    expect([pm.status!.phase, pm.status!.reason]).toEqual(['Failed', 'TargetPodFailed']);
    expect((await getPod(ns, 'queued'))!.spec!.nodeName).toBe(nodes.c);
    const rb = await rolledBack('move-greedy');
    expect(rb).toMatchObject({ status: 'False', reason: 'SourcePodNotRestored' });
    expect(rb.message).toMatch(
      new RegExp(`recreated source pod greedy for ${nodes.c}, but it does not run there: .*Insufficient nvidia.com/gpu`),
    );
    expect(rb.message).not.toMatch(/undefined/);
  });
});

it('carries no overhead over from the source: admission sets it from the RuntimeClass as it is now', async () => {
  const rc = `overhead-${tag}`;
  await k8s.create('/apis/node.k8s.io/v1/runtimeclasses', {
    apiVersion: 'node.k8s.io/v1',
    kind: 'RuntimeClass',
    metadata: { name: rc },
    handler: 'kata',
    overhead: { podFixed: { cpu: '250m', memory: '64Mi' } },
  });
  created.push(`/apis/node.k8s.io/v1/runtimeclasses/${rc}`);
  const source = await createRunningPod({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'sandboxed', namespace: ns, labels: { app: 'sandboxed' } },
    spec: {
      nodeName: nodes.a,
      runtimeClassName: rc,
      terminationGracePeriodSeconds: 1,
      containers: [container('main', { cpu: '500m', memory: '256Mi' })],
    },
  });
  expect(source.spec!.overhead).toEqual({ cpu: '250m', memory: '64Mi' });
  await k8s.mergePatch(`/apis/node.k8s.io/v1/runtimeclasses/${rc}`, { overhead: { podFixed: { cpu: '500m', memory: '128Mi' } } });
  const pm = await move('move-sandboxed', 'sandboxed', nodes.a, nodes.b);
  expect(pm.status).toMatchObject({
    phase: 'Completed',
    resources: { original: { cpu: '750m', memory: '320Mi' }, optimized: { cpu: '1000m', memory: '384Mi' } },
  });
  expect((await podsOfMigration(ns, 'move-sandboxed'))[0].spec!.overhead).toEqual({ cpu: '500m', memory: '128Mi' });
});
