import type { V1Pod } from '@kubernetes/client-node';
import {
  allows,
  buildTargetPod,
  checkpointPVCName,
  describeDestination,
  destinationOf,
  pinnedTo,
  restorablePod,
  targetPodName,
} from './optimizedPod';

const source: V1Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'tensorflow-pod',
    namespace: 'ml',
    uid: 'src-uid',
    resourceVersion: '42',
    creationTimestamp: new Date(0),
    labels: { app: 'tf' },
    annotations: { note: 'x' },
    ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'cm', uid: 'u' }],
    finalizers: ['example.com/keep'],
    managedFields: [{ manager: 'kubectl' }],
  },
  spec: {
    nodeName: 'node-1',
    containers: [
      {
        name: 'trainer',
        image: 't',
        volumeMounts: [
          { name: 'data', mountPath: '/data' },
          { name: 'kube-api-access-abcde', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
        ],
      },
      { name: 'downloader', image: 'd' },
    ],
    volumes: [
      { name: 'data', emptyDir: {} },
      { name: 'kube-api-access-abcde', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } },
    ],
    ephemeralContainers: [{ name: 'debug', image: 'busybox' }],
  },
  status: { phase: 'Running' },
};

const opts = {
  name: 'tensorflow-pod-mig-abcde',
  where: { node: 'node-2' },
  migrationName: 'move',
  migrationUid: 'pm-uid',
  keep: new Set(['trainer']),
};

describe('buildTargetPod', () => {
  const pod = buildTargetPod(source, opts);

  it('keeps only the containers asked for, pinned to the target node for the scheduler to place', () => {
    expect(pod.spec!.containers.map((c) => c.name)).toEqual(['trainer']);
    expect(pod.spec!.nodeName).toBeUndefined();
    expect(pod.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution).toEqual({
      nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-2'] }] }],
    });
  });

  it('copies nothing the server or other controllers set', () => {
    expect(pod.status).toBeUndefined();
    expect(pod.metadata).toEqual({
      name: 'tensorflow-pod-mig-abcde',
      namespace: 'ml',
      labels: { app: 'tf', 'migration.ai-storage.io/migration': 'move' },
      annotations: {
        note: 'x',
        'migration.ai-storage.io/migrated-from': 'tensorflow-pod',
        'migration.ai-storage.io/origin': 'tensorflow-pod',
        'migration.ai-storage.io/migration-uid': 'pm-uid',
      },
    });
    expect(pod.spec!.ephemeralContainers).toBeUndefined();
  });

  it('drops the injected service-account token volume so admission injects a fresh one', () => {
    expect(pod.spec!.volumes!.map((v) => v.name)).toEqual(['data']);
    expect(pod.spec!.containers[0].volumeMounts).toEqual([{ name: 'data', mountPath: '/data' }]);
  });

  it('does not change the source', () => {
    expect(source.spec!.containers).toHaveLength(2);
    expect(source.spec!.nodeName).toBe('node-1');
  });

  it('mounts the checkpoint claim in every kept container', () => {
    const withCkpt = buildTargetPod(source, {
      ...opts,
      keep: new Set(['trainer', 'downloader']),
      checkpointPVC: 'checkpoint-tensorflow-pod-1',
    });
    expect(withCkpt.spec!.volumes).toContainEqual({
      name: 'checkpoint-volume',
      persistentVolumeClaim: { claimName: 'checkpoint-tensorflow-pod-1' },
    });
    for (const c of withCkpt.spec!.containers) {
      expect(c.volumeMounts).toContainEqual({ name: 'checkpoint-volume', mountPath: '/migration-checkpoint' });
    }
  });
});

it('leaves off what apply tools track their objects by, keeping the labels Services select on', () => {
  const tracked: V1Pod = {
    ...source,
    metadata: {
      ...source.metadata,
      labels: {
        app: 'tf',
        'app.kubernetes.io/instance': 'ml',
        'kustomize.toolkit.fluxcd.io/name': 'apps',
        'kustomize.toolkit.fluxcd.io/namespace': 'flux-system',
      },
      annotations: {
        note: 'x',
        'kubectl.kubernetes.io/last-applied-configuration': '{}',
        'argocd.argoproj.io/tracking-id': 'ml:/Pod:ml/tensorflow-pod',
      },
    },
  };
  const copy = buildTargetPod(tracked, opts);
  expect(copy.metadata!.labels).toEqual({ app: 'tf', 'app.kubernetes.io/instance': 'ml', 'migration.ai-storage.io/migration': 'move' });
  expect(Object.keys(copy.metadata!.annotations!).sort()).toEqual([
    'migration.ai-storage.io/migrated-from',
    'migration.ai-storage.io/migration-uid',
    'migration.ai-storage.io/origin',
    'note',
  ]);
  // The source recreated by a rollback is the tools' own object again: it keeps them.
  expect(restorablePod(tracked).metadata!.annotations!['argocd.argoproj.io/tracking-id']).toBe('ml:/Pod:ml/tensorflow-pod');
});

it('keeps the name of the first pod of the line from copy to copy', () => {
  const second = buildTargetPod(buildTargetPod(source, opts), { ...opts, name: 'tensorflow-pod-mig-abcde-mig-fghij' });
  expect(second.metadata!.annotations).toMatchObject({
    'migration.ai-storage.io/migrated-from': 'tensorflow-pod-mig-abcde',
    'migration.ai-storage.io/origin': 'tensorflow-pod',
  });
});

it('replaces the checkpoint of an earlier migration with this one', () => {
  const migrated = buildTargetPod(source, { ...opts, checkpointPVC: 'checkpoint-old-1' });
  const again = buildTargetPod(migrated, { ...opts, checkpointPVC: 'checkpoint-new-2' });
  expect(again.spec!.volumes!.filter((v) => v.name === 'checkpoint-volume')).toEqual([
    { name: 'checkpoint-volume', persistentVolumeClaim: { claimName: 'checkpoint-new-2' } },
  ]);
  expect(again.spec!.containers[0].volumeMounts!.filter((m) => m.name === 'checkpoint-volume')).toHaveLength(1);
  const noCkpt = buildTargetPod(migrated, opts);
  expect(noCkpt.spec!.volumes!.some((v) => v.name === 'checkpoint-volume')).toBe(false);
});

it('makes a restorable copy of the source: same name and node, every container, nothing server-set', () => {
  const pod = restorablePod(source);
  expect(pod.metadata).toEqual({ name: 'tensorflow-pod', namespace: 'ml', labels: { app: 'tf' }, annotations: { note: 'x' } });
  expect(pod.spec!.nodeName).toBeUndefined();
  expect(pod.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms[0].matchFields).toEqual([
    { key: 'metadata.name', operator: 'In', values: ['node-1'] },
  ]);
  expect(pod.spec!.containers.map((c) => c.name)).toEqual(['trainer', 'downloader']);
  expect(pod.status).toBeUndefined();
});

describe('pinnedTo', () => {
  const gpu = { matchExpressions: [{ key: 'gpu', operator: 'In', values: ['a100'] }] };
  const zone = {
    matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }],
    matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }],
  };
  const pin = { key: 'metadata.name', operator: 'In', values: ['node-2'] };

  it("adds the node's name to each of the pod's own terms, so both must hold, and replaces an earlier pin", () => {
    const affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [gpu, zone] },
        preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: gpu }],
      },
      podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname' }] },
    };
    const pinned = pinnedTo(affinity, { node: 'node-2' })!;
    expect(pinned.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms).toEqual([
      { ...gpu, matchFields: [pin] },
      { matchExpressions: zone.matchExpressions, matchFields: [pin] },
    ]);
    expect(pinned.nodeAffinity!.preferredDuringSchedulingIgnoredDuringExecution).toEqual(
      affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution,
    );
    expect(pinned.podAntiAffinity).toEqual(affinity.podAntiAffinity);
  });

  it('makes a term of its own when the pod has none', () => {
    expect(pinnedTo(undefined, { node: 'node-2' })).toEqual({
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [pin] }] } },
    });
  });

  it("keeps the copy off the source node when the scheduler chooses, in each of the pod's terms", () => {
    const avoid = { key: 'metadata.name', operator: 'NotIn', values: ['node-1'] };
    const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [gpu, zone] } } };
    expect(
      pinnedTo(affinity, { avoid: 'node-1' })!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms,
    ).toEqual([
      { ...gpu, matchFields: [avoid] },
      { matchExpressions: zone.matchExpressions, matchFields: [avoid] },
    ]);
    expect(pinnedTo(undefined, { avoid: 'node-1' })).toEqual({
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [avoid] }] } },
    });
  });

  it('with nowhere to avoid, only removes an earlier pin, never leaving an empty term (which matches no node)', () => {
    const onlyPin = { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }] };
    const preferred = [{ weight: 1, preference: gpu }];
    const affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [onlyPin] },
        preferredDuringSchedulingIgnoredDuringExecution: preferred,
      },
    };
    expect(pinnedTo(affinity, {})).toEqual({ nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: preferred } });
    expect(
      pinnedTo({ nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [onlyPin] } } }, {}),
    ).toBeUndefined();
    expect(pinnedTo(undefined, {})).toBeUndefined();
    expect(pinnedTo({ nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [zone] } } }, {})).toEqual({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: zone.matchExpressions }] },
      },
    });
  });
});

describe('destinationOf', () => {
  const spec = { podName: 'p', sourceNode: 'node-1' };
  it('is the named node, or anywhere but the source unless spec.avoidSourceNode is false', () => {
    expect(destinationOf({ ...spec, targetNode: 'node-2' })).toEqual({ node: 'node-2' });
    expect(destinationOf(spec)).toEqual({ avoid: 'node-1' });
    expect(destinationOf({ ...spec, avoidSourceNode: true })).toEqual({ avoid: 'node-1' });
    expect(destinationOf({ ...spec, avoidSourceNode: false })).toEqual({});
    expect(allows({ avoid: 'node-1' }, 'node-1')).toBe(false);
    expect(allows({ avoid: 'node-1' }, 'node-3')).toBe(true);
    expect(allows({}, 'node-1')).toBe(true);
    expect(allows({ node: 'node-2' }, 'node-3')).toBe(false);
    expect(describeDestination({ avoid: 'node-1' })).toBe('any node but node-1');
  });
});

describe('names', () => {
  it('derives the target pod name from the migration UID, deterministically', () => {
    expect(targetPodName('tf', 'uid-1')).toBe(targetPodName('tf', 'uid-1'));
    expect(targetPodName('tf', 'uid-1')).not.toBe(targetPodName('tf', 'uid-2'));
    expect(targetPodName('tf', 'uid-1')).toMatch(/^tf-mig-[0-9a-f]{5}$/);
    expect(targetPodName('a'.repeat(253), 'u').length).toBeLessThanOrEqual(253);
  });
  it('names the checkpoint claim checkpoint-{pod}-{unixSeconds of the start time}', () => {
    expect(checkpointPVCName('tensorflow-pod', '2025-11-26T21:06:40.123Z')).toBe('checkpoint-tensorflow-pod-1764191200');
  });
});

describe('what admission and devices decide', () => {
  const gpuPod: V1Pod = {
    metadata: { name: 'gpu', namespace: 'ml' },
    spec: {
      nodeName: 'node-1',
      runtimeClassName: 'nvidia',
      overhead: { cpu: '100m' },
      resourceClaims: [
        { name: 'train-gpu', resourceClaimTemplateName: 'one-gpu' },
        { name: 'prep-gpu', resourceClaimTemplateName: 'one-gpu' },
        { name: 'shared', resourceClaimName: 'team-gpus' },
      ],
      initContainers: [{ name: 'fetch', image: 'f', resources: { claims: [{ name: 'shared' }] } }],
      containers: [
        { name: 'trainer', image: 't', resources: { claims: [{ name: 'train-gpu' }] } },
        { name: 'preprocess', image: 'p', resources: { claims: [{ name: 'prep-gpu' }] } },
      ],
    },
  };

  it('keeps only the claims a kept container (or init container) uses', () => {
    const copy = buildTargetPod(gpuPod, { ...opts, keep: new Set(['trainer']) });
    expect(copy.spec!.resourceClaims!.map((c) => c.name)).toEqual(['train-gpu', 'shared']);
    expect(restorablePod(gpuPod).spec!.resourceClaims).toHaveLength(3);
  });

  it('leaves the overhead to RuntimeClass admission, which refuses one that differs from the class', () => {
    expect(buildTargetPod(gpuPod, opts).spec!.overhead).toBeUndefined();
    expect(buildTargetPod(gpuPod, opts).spec!.runtimeClassName).toBe('nvidia');
    expect(restorablePod(gpuPod).spec!.overhead).toBeUndefined();
  });
});
