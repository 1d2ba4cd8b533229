import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { claimNames, controllingOwner, freeOnNode, singleNodeClaims, tolerates, untoleratedTaints } from './preflight';

describe('controllingOwner', () => {
  it('finds only a controller: true owner', () => {
    expect(controllingOwner({ metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', uid: '1' }] } })).toBeUndefined();
    expect(
      controllingOwner({ metadata: { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: '2', controller: true }] } }),
    ).toEqual({ kind: 'ReplicaSet', name: 'rs' });
  });
});

describe('volumes', () => {
  it('names the claims only one node can attach', () => {
    const claim = (name: string, modes: string[]) => ({ metadata: { name }, spec: { accessModes: modes } });
    expect(singleNodeClaims([claim('a', ['ReadWriteOnce']), claim('b', ['ReadWriteMany']), claim('c', ['ReadWriteOncePod'])])).toEqual(['a', 'c']);
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

describe('taints', () => {
  const taint = { key: 'gpu', value: 'a100', effect: 'NoSchedule' };
  it.each([
    [{ key: 'gpu', operator: 'Exists' }, true],
    [{ key: 'gpu', operator: 'Equal', value: 'a100' }, true],
    [{ key: 'gpu', operator: 'Equal', value: 'h100' }, false],
    [{ key: 'gpu', operator: 'Exists', effect: 'NoExecute' }, false],
    [{ operator: 'Exists' }, true],
    [{ key: 'other', operator: 'Exists' }, false],
  ])('%j tolerates gpu=a100:NoSchedule: %s', (t, ok) => expect(tolerates(t, taint)).toBe(ok));

  it('lists the NoSchedule/NoExecute taints the pod does not tolerate', () => {
    const node: V1Node = {
      spec: { taints: [taint, { key: 'soft', effect: 'PreferNoSchedule' }, { key: 'maint', effect: 'NoExecute' }] },
    };
    const pod: V1Pod = { spec: { containers: [], tolerations: [{ key: 'gpu', operator: 'Exists' }] } };
    expect(untoleratedTaints(pod, node).map((t) => t.key)).toEqual(['maint']);
  });
});

describe('freeOnNode', () => {
  it('subtracts the requests of live pods from allocatable', () => {
    const node: V1Node = { status: { allocatable: { cpu: '4', memory: '8Gi' } } };
    const pod = (cpu: string, memory: string, phase = 'Running'): V1Pod => ({
      spec: { containers: [{ name: 'c', resources: { requests: { cpu, memory } } }] },
      status: { phase },
    });
    const free = freeOnNode(node, [pod('1', '1Gi'), pod('500m', '512Mi'), pod('2', '2Gi', 'Succeeded')]);
    expect(free.cpu).toBeCloseTo(2.5);
    expect(free.memory).toBe(8 * 2 ** 30 - 1.5 * 2 ** 30);
  });
});
