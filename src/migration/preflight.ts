// The checks step 1 makes before anything is created. Pure functions over API objects.
import type { V1Node, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_MIRROR, CHECKPOINT_VOLUME } from '../api/types';

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

/** Why a pod stays on its node whatever a drain or a reclaim does (kubectl drain --ignore-daemonsets leaves them too); undefined otherwise. */
export function nodeBound(pod: V1Pod): string | undefined {
  if (pod.metadata?.annotations?.[ANNOTATION_MIRROR] !== undefined) return "the mirror of a static pod: it belongs to the node's kubelet";
  const owner = controllingOwner(pod);
  if (owner?.kind === 'DaemonSet') return `DaemonSet ${owner.name}'s pod: it belongs to the node`;
  return undefined;
}
