import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigration, SteerReplacement } from '../api/types';
import { armedExpression } from './arming';
import { steerPatch, steeringMigrations } from './steer';

const owner = { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'nb', uid: 'sts-uid', controller: true };
const pod: V1Pod = {
  metadata: { name: 'nb-0', labels: { app: 'nb' }, ownerReferences: [owner] },
  spec: { containers: [{ name: 'main', image: 'x' }] },
};
const waiting = (
  over: Partial<NonNullable<PodMigration['status']>> = {},
  name = 'move-nb',
  replacement: SteerReplacement = { name: 'nb-0' },
): PodMigration =>
  ({
    metadata: { name, namespace: 'ns', uid: `${name}-uid` },
    spec: { podName: 'nb-0', sourceNode: 'node-1', targetNode: 'node-2' },
    status: {
      phase: 'CreatingTargetPod',
      mode: 'Steer',
      steer: { owner, replacement, armedAt: '2026-01-01T00:00:00Z' },
      sourcePod: { name: 'nb-0', uid: 'old', node: 'node-1' },
      ...over,
    },
  }) as PodMigration;
const names = (ms: PodMigration[]) => ms.map((m) => m.metadata.name);

describe('steeringMigrations', () => {
  it("finds the migration waiting for this owner's replacement of its source", () => {
    expect(names(steeringMigrations(pod, [waiting()]))).toEqual(['move-nb']);
  });

  it('ignores migrations not armed, already steered, ended or being deleted, of other owners, and bound pods', () => {
    const armed = waiting().status!.steer!;
    expect(steeringMigrations(pod, [waiting({ steer: { ...armed, armedAt: undefined } })])).toEqual([]);
    expect(steeringMigrations(pod, [waiting({ targetPod: { name: 'nb-0', uid: 'new', node: 'node-2' } })])).toEqual([]);
    expect(steeringMigrations(pod, [waiting({ phase: 'Failed' })])).toEqual([]);
    expect(
      steeringMigrations(pod, [{ ...waiting(), metadata: { ...waiting().metadata, deletionTimestamp: '2026-01-01T00:00:01Z' } }]),
    ).toEqual([]);
    expect(steeringMigrations(pod, [waiting({ steer: { ...armed, owner: { ...owner, uid: 'other' } } })])).toEqual([]);
    expect(steeringMigrations({ ...pod, spec: { ...pod.spec!, nodeName: 'node-1' } }, [waiting()])).toEqual([]);
    expect(steeringMigrations({ ...pod, metadata: { ...pod.metadata, ownerReferences: [] } }, [waiting()])).toEqual([]);
  });

  it('gives each new pod only to the migration whose source it replaces (two pods of one StatefulSet moving at once)', () => {
    const a = waiting({}, 'move-0', { name: 'nb-0' });
    const b = waiting({ sourcePod: { name: 'nb-1', uid: 'old-1', node: 'node-2' } }, 'move-1', { name: 'nb-1' });
    expect(names(steeringMigrations(pod, [b, a]))).toEqual(['move-0']);
    expect(names(steeringMigrations({ ...pod, metadata: { ...pod.metadata, name: 'nb-1' } }, [a, b]))).toEqual(['move-1']);
    // A pod the StatefulSet makes as it scales up is no one's replacement.
    expect(steeringMigrations({ ...pod, metadata: { ...pod.metadata, name: 'nb-2' } }, [a, b])).toEqual([]);
  });

  it("recognises an Indexed Job's replacement by its completion index, and a one-pod Job's by being new", () => {
    const indexed = waiting({}, 'move-job', { completionIndex: '3' });
    const withIndex = (i: string): V1Pod => ({
      ...pod,
      metadata: { ...pod.metadata, name: undefined, generateName: 'job-', annotations: { 'batch.kubernetes.io/job-completion-index': i } },
    });
    expect(names(steeringMigrations(withIndex('3'), [indexed]))).toEqual(['move-job']);
    expect(steeringMigrations(withIndex('2'), [indexed])).toEqual([]);
    expect(
      names(
        steeringMigrations({ ...pod, metadata: { ...pod.metadata, name: 'job-xyz' } }, [waiting({}, 'move-one', { onlyNewPod: true })]),
      ),
    ).toEqual(['move-one']);
  });

  it('steers a dry-run probe only for the migration that sent it', () => {
    const probe = (uid: string): V1Pod => ({
      ...pod,
      metadata: { ...pod.metadata, name: undefined, annotations: { 'migration.ai-storage.io/steer-probe': uid } },
    });
    expect(names(steeringMigrations(probe('move-nb-uid'), [waiting()]))).toEqual(['move-nb']);
    expect(steeringMigrations(probe('someone-else'), [waiting()])).toEqual([]);
  });
});

describe('steerPatch', () => {
  it('pins the pod to the target node and marks it as the migration’s', () => {
    const ops = steerPatch(pod, waiting());
    const byPath = Object.fromEntries(ops.map((o) => [o.path, o.value]));
    expect(byPath['/spec/affinity']).toEqual({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-2'] }] }],
        },
      },
    });
    expect(byPath['/metadata/labels']).toEqual({ app: 'nb', 'migration.ai-storage.io/migration': 'move-nb' });
    expect(byPath['/metadata/annotations']).toEqual({
      'migration.ai-storage.io/migration-uid': 'move-nb-uid',
      'migration.ai-storage.io/migrated-from': 'nb-0',
      'migration.ai-storage.io/origin': 'nb-0',
    });
    expect(byPath['/spec/volumes']).toBeUndefined();
  });
  it('mounts the checkpoint claim when the migration made one', () => {
    const ops = steerPatch(pod, waiting({ checkpointPVC: 'checkpoint-nb-0-1' }));
    const byPath = Object.fromEntries(ops.map((o) => [o.path, o.value]));
    expect(byPath['/spec/volumes']).toEqual([{ name: 'checkpoint-volume', persistentVolumeClaim: { claimName: 'checkpoint-nb-0-1' } }]);
    expect(byPath['/spec/containers']).toEqual([
      { name: 'main', image: 'x', volumeMounts: [{ name: 'checkpoint-volume', mountPath: '/migration-checkpoint' }] },
    ]);
  });
});

describe('armedExpression', () => {
  it('matches no pod at rest, and only the owners named while armed', () => {
    expect(armedExpression([])).toBe('false');
    expect(armedExpression(['b-1', 'a-2', 'b-1'])).toBe(
      "has(object.metadata.ownerReferences) && object.metadata.ownerReferences.exists(r, has(r.controller) && r.controller && r.uid in ['a-2', 'b-1'])",
    );
    expect(armedExpression(["x' || true || '"])).toBe('false');
  });
});
