// The checks step 1 makes before anything is created. Pure functions over API objects.
import type { V1Node, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { CHECKPOINT_VOLUME } from '../api/types';

/** The owner that would recreate the pod if it were deleted, if any. */
export function controllingOwner(pod: V1Pod): { apiVersion: string; kind: string; name: string; uid: string } | undefined {
  const ref = (pod.metadata?.ownerReferences ?? []).find((r) => r.controller);
  return ref ? { apiVersion: ref.apiVersion, kind: ref.kind, name: ref.name, uid: ref.uid } : undefined;
}

/** Claims mounted by the pod that only one node can attach at a time. */
export function singleNodeClaims(claims: readonly V1PersistentVolumeClaim[]): string[] {
  return claims
    .filter((c) => (c.spec?.accessModes ?? []).some((m) => m === 'ReadWriteOnce' || m === 'ReadWriteOncePod'))
    .map((c) => c.metadata!.name!);
}

/** Claims the pod mounts, except an earlier migration's checkpoint (the copy does not keep it). */
export function claimNames(pod: V1Pod): string[] {
  return (pod.spec?.volumes ?? []).flatMap((v) =>
    v.persistentVolumeClaim && v.name !== CHECKPOINT_VOLUME ? [v.persistentVolumeClaim.claimName] : [],
  );
}

export function nodeIsReady(node: V1Node): boolean {
  return (node.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}
