import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { lacksRoom, nodeExcludes, nodeSelectorMatches } from './placement';

const node = (extra: Partial<V1Node> = {}, allocatable: Record<string, string> = { cpu: '4', memory: '8Gi', pods: '10' }): V1Node => ({
  metadata: { name: 'node-2', labels: { zone: 'a', 'kubernetes.io/hostname': 'node-2' } },
  status: { allocatable },
  ...extra,
});
const pod = (spec: Partial<V1Pod['spec']> = {}, requests: Record<string, string> = { cpu: '1', memory: '1Gi' }): V1Pod => ({
  metadata: { name: 'p' },
  spec: { containers: [{ name: 'c', resources: { requests } }], ...spec },
});

describe('nodeExcludes', () => {
  it('names a taint the pod does not tolerate, and lets a tolerated one pass', () => {
    const tainted = node({
      spec: {
        taints: [
          { key: 'gpu', value: 'yes', effect: 'NoSchedule' },
          { key: 'soft', effect: 'PreferNoSchedule' },
        ],
      },
    });
    expect(nodeExcludes(pod(), tainted)).toMatch(/taints the pod does not tolerate: gpu=yes:NoSchedule$/);
    expect(nodeExcludes(pod({ tolerations: [{ key: 'gpu', operator: 'Exists' }] }), tainted)).toBeUndefined();
    expect(nodeExcludes(pod({ tolerations: [{ operator: 'Exists' }] }), tainted)).toBeUndefined();
    expect(nodeExcludes(pod({ tolerations: [{ key: 'gpu', value: 'no' }] }), tainted)).toMatch(/gpu=yes/);
  });
  it('checks the node selector and the required node affinity, ignoring an earlier pin', () => {
    expect(nodeExcludes(pod({ nodeSelector: { zone: 'b' } }), node())).toMatch(/does not match the pod's nodeSelector \(zone=b\)/);
    const affinity = (values: string[]) => ({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            {
              matchExpressions: [{ key: 'zone', operator: 'In', values }],
              matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }],
            },
          ],
        },
      },
    });
    expect(nodeExcludes(pod({ affinity: affinity(['a']) }), node())).toBeUndefined();
    expect(nodeExcludes(pod({ affinity: affinity(['b']) }), node())).toMatch(/required node affinity/);
  });
});

describe('lacksRoom', () => {
  it('subtracts what the pods bound there request, as the scheduler does, and names what is short', () => {
    expect(lacksRoom(pod(), node(), [pod({}, { cpu: '2500m', memory: '1Gi' })])).toBeUndefined();
    expect(lacksRoom(pod(), node(), [pod({}, { cpu: '3500m', memory: '1Gi' })])).toMatch(/cpu: requests 1000m, 500m free of 4000m/);
    const finished = { ...pod({}, { cpu: '4' }), status: { phase: 'Succeeded' } };
    expect(lacksRoom(pod(), node(), [finished])).toBeUndefined();
  });
  it('counts extended resources and the number of pods', () => {
    expect(lacksRoom(pod({}, { 'nvidia.com/gpu': '1' }), node(), [])).toMatch(/nvidia.com\/gpu: requests 1, 0 free of 0/);
    expect(lacksRoom(pod(), node({}, { cpu: '4', memory: '8Gi', pods: '1' }), [pod({}, {})])).toMatch(/pods: 1 of 1 already/);
  });
});

it('nodeSelectorMatches: any term whose expressions and fields all hold', () => {
  expect(
    nodeSelectorMatches({ nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-2'] }] }] }, node()),
  ).toBe(true);
  expect(
    nodeSelectorMatches({ nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }] }] }, node()),
  ).toBe(false);
  expect(
    nodeSelectorMatches({ nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['b'] }] }] }, node()),
  ).toBe(true);
});
