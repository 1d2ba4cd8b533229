// What the admission webhook does to a pod an owner creates (Steer mode). Pure functions.
import type { V1Pod } from '@kubernetes/client-node';
import {
  ANNOTATION_MIGRATED_FROM,
  ANNOTATION_MIGRATION_UID,
  ANNOTATION_ORIGIN,
  CHECKPOINT_MOUNT_PATH,
  CHECKPOINT_VOLUME,
  LABEL_MIGRATION,
  type PodMigration,
  TERMINAL_PHASES,
} from '../api/types';
import { pinnedTo } from '../migration/optimizedPod';

/**
 * The migration waiting for this pod: one in Steer mode whose source was asked to be
 * evicted and that has no replacement yet, for the pod's controlling owner. A pod
 * already bound to a node (spec.nodeName) cannot be steered.
 */
export function steeringMigration(pod: V1Pod, migrations: readonly PodMigration[]): PodMigration | undefined {
  const owner = pod.metadata?.ownerReferences?.find((r) => r.controller);
  if (!owner || pod.spec?.nodeName) return undefined;
  return migrations.find(
    (m) =>
      m.status?.mode === 'Steer' &&
      m.status.steer?.owner.uid === owner.uid &&
      !!m.status.sourcePod?.evictionRequestedAt &&
      !m.status.targetPod &&
      !TERMINAL_PHASES.includes(m.status.phase ?? 'Pending') &&
      !m.metadata.deletionTimestamp,
  );
}

export interface JsonPatchOp {
  op: 'add';
  path: string;
  value: unknown;
}

/**
 * The JSON patch that steers `pod` for `m`: pinned to the target node by node affinity,
 * labelled and annotated as this migration's (so the migration finds it), and with the
 * checkpoint claim mounted at /migration-checkpoint in every container when there is one.
 */
export function steerPatch(pod: V1Pod, m: PodMigration): JsonPatchOp[] {
  const spec = pod.spec!;
  const ops: JsonPatchOp[] = [
    { op: 'add', path: '/spec/affinity', value: pinnedTo(spec.affinity, m.spec.targetNode) },
    { op: 'add', path: '/metadata/labels', value: { ...pod.metadata?.labels, [LABEL_MIGRATION]: m.metadata.name } },
    {
      op: 'add',
      path: '/metadata/annotations',
      value: {
        ...pod.metadata?.annotations,
        [ANNOTATION_MIGRATION_UID]: m.metadata.uid,
        [ANNOTATION_MIGRATED_FROM]: m.status!.sourcePod!.name,
        [ANNOTATION_ORIGIN]: m.spec.podName,
      },
    },
  ];
  const claim = m.status?.checkpointPVC;
  if (claim && !(spec.volumes ?? []).some((v) => v.name === CHECKPOINT_VOLUME)) {
    ops.push({ op: 'add', path: '/spec/volumes', value: [...(spec.volumes ?? []), { name: CHECKPOINT_VOLUME, persistentVolumeClaim: { claimName: claim } }] });
    ops.push({
      op: 'add',
      path: '/spec/containers',
      value: spec.containers.map((c) => ({ ...c, volumeMounts: [...(c.volumeMounts ?? []), { name: CHECKPOINT_VOLUME, mountPath: CHECKPOINT_MOUNT_PATH }] })),
    });
  }
  return ops;
}
