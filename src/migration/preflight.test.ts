import type { V1Pod } from '@kubernetes/client-node';
import { claimNames, controllingOwner, nodeBound, singleNodeClaims } from './preflight';

describe('controllingOwner', () => {
  it('finds only a controller: true owner', () => {
    expect(
      controllingOwner({ metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', uid: '1' }] } }),
    ).toBeUndefined();
    expect(
      controllingOwner({
        metadata: { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: '2', controller: true }] },
      }),
    ).toEqual({ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: '2' });
  });
});

describe('volumes', () => {
  it('names the claims only one node can attach', () => {
    const claim = (name: string, modes: string[]) => ({ metadata: { name }, spec: { accessModes: modes } });
    expect(singleNodeClaims([claim('a', ['ReadWriteOnce']), claim('b', ['ReadWriteMany']), claim('c', ['ReadWriteOncePod'])])).toEqual([
      'a',
      'c',
    ]);
  });
  it('ignores the checkpoint of an earlier migration', () => {
    const pod: V1Pod = {
      spec: {
        containers: [],
        volumes: [
          { name: 'data', persistentVolumeClaim: { claimName: 'data' } },
          { name: 'checkpoint-volume', persistentVolumeClaim: { claimName: 'checkpoint-p-1' } },
          { name: 'tmp', emptyDir: {} },
        ],
      },
    };
    expect(claimNames(pod)).toEqual(['data']);
  });
});

describe('nodeBound', () => {
  const pod = (metadata: V1Pod['metadata']): V1Pod => ({ metadata });
  it('names DaemonSet and mirror pods, which belong to their node, and nothing else', () => {
    expect(
      nodeBound(pod({ ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: 'u', controller: true }] })),
    ).toMatch(/DaemonSet agent/);
    expect(nodeBound(pod({ annotations: { 'kubernetes.io/config.mirror': 'x' } }))).toMatch(/mirror of a static pod/);
    expect(
      nodeBound(pod({ ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web', uid: 'u', controller: true }] })),
    ).toBeUndefined();
    expect(nodeBound(pod({}))).toBeUndefined();
  });
});
