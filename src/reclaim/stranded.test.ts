import type { V1Container, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { type StrandedPod, likelyMode, qualifies, scanPod, sumBy } from './stranded';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

const c = (name: string, cpu: string, memory: string, extra: Partial<V1Container> = {}): V1Container => ({
  name,
  image: 'x',
  resources: { requests: { cpu, memory } },
  ...extra,
});
const running = (name: string): V1ContainerStatus =>
  ({
    name,
    ready: true,
    restartCount: 0,
    image: 'x',
    imageID: '',
    state: { running: { startedAt: ago(900) } },
  }) as unknown as V1ContainerStatus;
const exited = (name: string, exitCode: number, finishedAt = ago(600)): V1ContainerStatus =>
  ({
    name,
    ready: false,
    restartCount: 0,
    image: 'x',
    imageID: '',
    state: { terminated: { exitCode, finishedAt, reason: exitCode === 0 ? 'Completed' : 'Error' } },
  }) as unknown as V1ContainerStatus;

function pod(
  containers: V1Container[],
  statuses: V1ContainerStatus[],
  extra: Partial<V1Pod['spec']> = {},
  meta: Partial<V1Pod['metadata']> = {},
): V1Pod {
  return {
    metadata: { name: 'p', namespace: 'ns', uid: 'u1', resourceVersion: '7', creationTimestamp: ago(3600) as unknown as Date, ...meta },
    spec: { nodeName: 'node-1', containers, ...extra },
    status: { phase: 'Running', containerStatuses: statuses },
  };
}

describe('scanPod', () => {
  it('counts the requests of containers that exited 0, and keeps running and crashed ones', () => {
    const s = scanPod(
      pod(
        [c('trainer', '2', '4Gi'), c('downloader', '1500m', '3Gi'), c('flaky', '500m', '1Gi')],
        [running('trainer'), exited('downloader', 0), exited('flaky', 1)],
      ),
    ) as StrandedPod;
    expect(s.stranded).toEqual({ cpu: 1.5, memory: 3 * 2 ** 30 });
    expect(s.finished).toEqual(['downloader']);
    expect(s.crashing).toEqual(['flaky']);
    expect(s.finishedAt).toBe(NOW - 600_000);
    expect(s.mode).toBe('Copy');
    expect(s.node).toBe('node-1');
  });

  it('takes sidecars and init containers as kube-scheduler does', () => {
    // The init container (4 CPU, 4Gi) outweighs what runs (1 + 1 + sidecar 0.5 CPU): the pod reserves that,
    // and so does a copy, which runs it again. Nothing to give back.
    const initOnly = scanPod(
      pod([c('app', '1', '1Gi'), c('done', '1', '1Gi')], [running('app'), exited('done', 0)], {
        initContainers: [c('prep', '4', '4Gi'), c('proxy', '500m', '256Mi', { restartPolicy: 'Always' })],
      }),
    );
    expect(initOnly.stranded).toBeUndefined();
    // With a small init container, the sidecar counts with the app containers and the finished one is freed.
    const s = scanPod(
      pod([c('app', '1', '1Gi'), c('done', '2', '2Gi')], [running('app'), exited('done', 0)], {
        initContainers: [c('prep', '100m', '64Mi'), c('proxy', '500m', '256Mi', { restartPolicy: 'Always' })],
      }),
    ) as StrandedPod;
    expect(s.stranded).toEqual({ cpu: 2, memory: 2 * 2 ** 30 });
  });

  it('counts nothing that pod-level requests hold, and adds no overhead twice', () => {
    const podLevel = scanPod(
      pod([c('app', '1', '1Gi'), c('done', '1', '1Gi')], [running('app'), exited('done', 0)], {
        resources: { requests: { cpu: '4', memory: '8Gi' } },
      }),
    );
    expect(podLevel.stranded).toBeUndefined();
    const cpuOnly = scanPod(
      pod([c('app', '1', '1Gi'), c('done', '1', '1Gi')], [running('app'), exited('done', 0)], {
        resources: { requests: { cpu: '4' } },
        overhead: { cpu: '250m', memory: '128Mi' },
      }),
    ) as StrandedPod;
    expect(cpuOnly.stranded).toEqual({ cpu: 0, memory: 2 ** 30 });
  });

  it('strands nothing for a pod that is not Running, is being deleted, or has nothing left to run', () => {
    const base = [c('app', '1', '1Gi'), c('done', '1', '1Gi')];
    const st = [running('app'), exited('done', 0)];
    expect(scanPod({ ...pod(base, st), status: { phase: 'Pending', containerStatuses: st } }).stranded).toBeUndefined();
    expect(scanPod(pod(base, st, {}, { deletionTimestamp: new Date(NOW) })).stranded).toBeUndefined();
    expect(scanPod(pod(base, [exited('app', 0), exited('done', 0)])).stranded).toBeUndefined();
    expect(scanPod(pod(base, [running('app'), running('done')])).stranded).toBeUndefined();
    // And what the cache keeps of it is its key.
    expect(scanPod(pod(base, [running('app'), running('done')]))).toEqual({
      metadata: { name: 'p', namespace: 'ns', resourceVersion: '7' },
    });
  });
});

describe('likelyMode', () => {
  const owned = (kind: string, apiVersion = 'apps/v1') =>
    pod([], [], {}, { ownerReferences: [{ apiVersion, kind, name: 'o', uid: 'o1', controller: true }] });
  it('reads the mode from the controlling owner', () => {
    expect(likelyMode(pod([], []))).toBe('Copy');
    expect(likelyMode(owned('ReplicaSet'))).toBe('Surge');
    expect(likelyMode(owned('StatefulSet'))).toBe('Steer');
    expect(likelyMode(owned('Job', 'batch/v1'))).toBe('Steer');
    expect(likelyMode(owned('DaemonSet'))).toBeUndefined();
    expect(likelyMode(pod([], [], {}, { annotations: { 'migration.ai-storage.io/migratable': 'false' } }))).toBeUndefined();
  });
});

describe('qualifies', () => {
  const p = (cpu: number, memory: number, finishedAgoS = 600, labels: Record<string, string> = {}): StrandedPod => ({
    metadata: { name: 'p', namespace: 'ns', labels },
    node: 'n',
    stranded: { cpu, memory },
    finished: ['done'],
    crashing: [],
    finishedAt: NOW - finishedAgoS * 1000,
    mode: 'Copy',
  });
  const t = { minCPU: 0.5, minMemory: 2 ** 30, minFinishedSeconds: 300 };
  it('takes a pod over either threshold, finished long enough, in a matching namespace and with matching labels', () => {
    expect(qualifies(p(0.5, 0), t, {}, NOW)).toBe(true);
    expect(qualifies(p(0, 2 ** 30), t, {}, NOW)).toBe(true);
    expect(qualifies(p(0.4, 2 ** 29), t, {}, NOW)).toBe(false);
    expect(qualifies(p(1, 0, 100), t, {}, NOW)).toEqual({ after: 200_000 });
    expect(qualifies(p(1, 0), { ...t, namespaceSelector: { matchLabels: { team: 'ml' } } }, { team: 'web' }, NOW)).toBe(false);
    expect(qualifies(p(1, 0), { ...t, namespaceSelector: { matchLabels: { team: 'ml' } } }, { team: 'ml' }, NOW)).toBe(true);
    expect(qualifies(p(1, 0), { ...t, podSelector: { matchLabels: { app: 'x' } } }, {}, NOW)).toBe(false);
    expect(qualifies(p(1, 0, 600, { app: 'x' }), { ...t, podSelector: { matchLabels: { app: 'x' } } }, {}, NOW)).toBe(true);
    expect(qualifies(p(1, 0), t, undefined, NOW)).toBe(false);
    expect(qualifies({ ...p(1, 0), mode: undefined }, t, {}, NOW)).toBe(false);
  });
  it('sums many small figures exactly', () => {
    const many = Array.from({ length: 834 }, () => p(0.02, 1));
    expect(sumBy(many, () => '').get('')).toEqual({ cpu: 16.68, memory: 834, pods: 834 });
  });
  it('sums by a key', () => {
    const sums = sumBy([p(1, 2), p(0.5, 3), { ...p(2, 0), node: 'm' }], (x) => x.node);
    expect(sums.get('n')).toEqual({ cpu: 1.5, memory: 5, pods: 2 });
    expect(sums.get('m')).toEqual({ cpu: 2, memory: 0, pods: 1 });
  });
});
