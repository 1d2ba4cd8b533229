// What the admission webhook does to a pod an owner creates (Steer mode). Pure functions.
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_STEER_PROBE, CHECKPOINT_MOUNT_PATH, CHECKPOINT_VOLUME, type PodMigration, TERMINAL_PHASES } from '../api/types';
import { migrationMarks } from '../migration/marks';
import { destinationOf, pinnedTo } from '../migration/optimizedPod';
import { isReplacement } from '../migration/owners';

/** A migration that waits for its owner's replacement of the source: armed, not yet steered, not ended. */
export function waitsForReplacement(m: PodMigration): boolean {
  const s = m.status;
  return (
    s?.mode === 'Steer' &&
    !!s.steer?.armedAt &&
    s.phase === 'CreatingTargetPod' &&
    !s.targetPod &&
    !TERMINAL_PHASES.includes(s.phase) &&
    !m.metadata.deletionTimestamp
  );
}

/**
 * The migrations that `pod`, being created, is the awaited replacement for: those waiting
 * on the pod's controlling owner whose replacement it is (the same name, the same completion
 * index, ...), or whose dry-run probe it is. A pod already bound to a node cannot be steered.
 */
export function steeringMigrations(pod: V1Pod, migrations: readonly PodMigration[]): PodMigration[] {
  const owner = pod.metadata?.ownerReferences?.find((r) => r.controller);
  if (!owner || pod.spec?.nodeName) return [];
  const probe = pod.metadata?.annotations?.[ANNOTATION_STEER_PROBE];
  return migrations.filter(
    (m) =>
      waitsForReplacement(m) &&
      m.status!.steer!.owner.uid === owner.uid &&
      (probe !== undefined ? probe === m.metadata.uid : isReplacement(pod, m.status!.steer!.replacement)),
  );
}

export interface JsonPatchOp {
  op: 'add';
  path: string;
  value: unknown;
}

/**
 * The JSON patch that steers `pod` for `m`: pinned to the target node (or kept off the source) by node affinity,
 * marked as this migration's (so the migration finds it), and with the checkpoint claim
 * mounted at /migration-checkpoint in every container when there is one.
 */
export function steerPatch(pod: V1Pod, m: PodMigration): JsonPatchOp[] {
  const spec = pod.spec!;
  const marks = migrationMarks(m.metadata, { name: m.status!.sourcePod!.name, origin: m.spec.podName });
  const ops: JsonPatchOp[] = [
    { op: 'add', path: '/spec/affinity', value: pinnedTo(spec.affinity, destinationOf(m.spec)) ?? null },
    { op: 'add', path: '/metadata/labels', value: { ...pod.metadata?.labels, ...marks.labels } },
    { op: 'add', path: '/metadata/annotations', value: { ...pod.metadata?.annotations, ...marks.annotations } },
  ];
  // A voluntary move never preempts unless asked to: the replacement gets the PriorityClass
  // of its priority's value that never preempts, and the Priority admission plugin, run
  // again after this patch, sets its priority and policy from that class.
  const pc = m.status?.steer?.priorityClassName;
  if (pc && !m.spec.allowPreemption) {
    ops.push(
      { op: 'add', path: '/spec/priorityClassName', value: pc },
      { op: 'add', path: '/spec/priority', value: null },
      { op: 'add', path: '/spec/preemptionPolicy', value: null },
    );
  }
  const claim = m.status?.checkpointPVC;
  if (claim && !(spec.volumes ?? []).some((v) => v.name === CHECKPOINT_VOLUME)) {
    ops.push({
      op: 'add',
      path: '/spec/volumes',
      value: [...(spec.volumes ?? []), { name: CHECKPOINT_VOLUME, persistentVolumeClaim: { claimName: claim } }],
    });
    ops.push({
      op: 'add',
      path: '/spec/containers',
      value: spec.containers.map((c) => ({
        ...c,
        volumeMounts: [...(c.volumeMounts ?? []), { name: CHECKPOINT_VOLUME, mountPath: CHECKPOINT_MOUNT_PATH }],
      })),
    });
  }
  return ops;
}
