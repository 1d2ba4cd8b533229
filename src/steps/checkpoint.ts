// Step 2: when spec.preservePV is set, create the checkpoint claim. Its name comes from
// the start time, persisted first, so a restarted operator finds the claim it already made.
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { ANNOTATION_MIGRATION_UID, CHECKPOINT_LABELS, LABEL_MIGRATION, withDefaults } from '../api/types';
import { MigrationFailure, isAlreadyExists } from '../errors';
import { paths } from '../kube/client';
import { checkpointPVCName } from '../migration/optimizedPod';
import type { Step } from '../migration/context';

export const checkpoint: Step = async ({ migration, status, client, persist }) => {
  const spec = withDefaults(migration.spec);
  if (!spec.preservePV) return { done: true, skipped: true, message: 'preservePV is false: no checkpoint claim' };
  // The migration may have started in this reconcile: its start time goes on record
  // before a claim is named after it.
  await persist();

  const { namespace, name, uid } = migration.metadata;
  const claimName = checkpointPVCName(spec.podName, status.startTime!);
  const claim: V1PersistentVolumeClaim = {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: claimName,
      namespace,
      labels: { ...CHECKPOINT_LABELS, [LABEL_MIGRATION]: name },
      annotations: { [ANNOTATION_MIGRATION_UID]: uid },
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: spec.checkpointSize } },
      ...(spec.storageClassName ? { storageClassName: spec.storageClassName } : {}),
    },
  };
  try {
    await client.create(paths.pvcs(namespace), claim);
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    const existing = await client.get<V1PersistentVolumeClaim>(paths.pvc(namespace, claimName));
    if (existing.metadata?.annotations?.[ANNOTATION_MIGRATION_UID] !== uid) {
      throw new MigrationFailure(
        'CheckpointNameConflict',
        `a PersistentVolumeClaim named ${claimName} exists and was not made by this migration`,
      );
    }
  }
  status.checkpointPVC = claimName;
  return { done: true, message: `checkpoint claim ${claimName} (${spec.checkpointSize}, ReadWriteOnce) created` };
};
