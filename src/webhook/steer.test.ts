import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigration } from '../api/types';
import { steerPatch, steeringMigration } from './steer';

const owner = { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'nb', uid: 'sts-uid', controller: true };
const pod: V1Pod = {
  metadata: { name: 'nb-0', labels: { app: 'nb' }, ownerReferences: [owner] },
  spec: { containers: [{ name: 'main', image: 'x' }] },
};
const waiting = (over: Partial<NonNullable<PodMigration['status']>> = {}): PodMigration =>
  ({
    metadata: { name: 'move-nb', namespace: 'ns', uid: 'pm-uid' },
    spec: { podName: 'nb-0', sourceNode: 'node-1', targetNode: 'node-2' },
    status: {
      phase: 'CreatingTargetPod',
      mode: 'Steer',
      steer: { owner },
      sourcePod: { name: 'nb-0', uid: 'old', node: 'node-1', evictionRequestedAt: '2026-01-01T00:00:00Z' },
      ...over,
    },
  }) as PodMigration;

describe('steeringMigration', () => {
  it("finds the migration waiting for this owner's next pod", () => {
    expect(steeringMigration(pod, [waiting()])?.metadata.name).toBe('move-nb');
  });
  it('ignores migrations not yet evicting, already steered, ended, of other owners, and bound pods', () => {
    const src = waiting().status!.sourcePod!;
    expect(steeringMigration(pod, [waiting({ sourcePod: { ...src, evictionRequestedAt: undefined } })])).toBeUndefined();
    expect(steeringMigration(pod, [waiting({ targetPod: { name: 'nb-0', uid: 'new', node: 'node-2' } })])).toBeUndefined();
    expect(steeringMigration(pod, [waiting({ phase: 'Failed' })])).toBeUndefined();
    expect(steeringMigration(pod, [waiting({ steer: { owner: { ...owner, uid: 'other' } } })])).toBeUndefined();
    expect(steeringMigration({ ...pod, spec: { ...pod.spec!, nodeName: 'node-1' } }, [waiting()])).toBeUndefined();
    expect(steeringMigration({ ...pod, metadata: { ...pod.metadata, ownerReferences: [] } }, [waiting()])).toBeUndefined();
  });
});

describe('steerPatch', () => {
  it('pins the pod to the target node and marks it as the migration’s', () => {
    const ops = steerPatch(pod, waiting());
    const byPath = Object.fromEntries(ops.map((o) => [o.path, o.value]));
    expect(byPath['/spec/affinity']).toEqual({
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-2'] }] }] } },
    });
    expect(byPath['/metadata/labels']).toEqual({ app: 'nb', 'migration.ai-storage.io/migration': 'move-nb' });
    expect(byPath['/metadata/annotations']).toEqual({
      'migration.ai-storage.io/migration-uid': 'pm-uid',
      'migration.ai-storage.io/migrated-from': 'nb-0',
      'migration.ai-storage.io/origin': 'nb-0',
    });
    expect(byPath['/spec/volumes']).toBeUndefined();
  });
  it('mounts the checkpoint claim when the migration made one', () => {
    const ops = steerPatch(pod, waiting({ checkpointPVC: 'checkpoint-nb-0-1' }));
    const byPath = Object.fromEntries(ops.map((o) => [o.path, o.value]));
    expect(byPath['/spec/volumes']).toEqual([{ name: 'checkpoint-volume', persistentVolumeClaim: { claimName: 'checkpoint-nb-0-1' } }]);
    expect(byPath['/spec/containers']).toEqual([{ name: 'main', image: 'x', volumeMounts: [{ name: 'checkpoint-volume', mountPath: '/migration-checkpoint' }] }]);
  });
});
