// The checks step 1 makes before anything is created. Pure functions over API objects.
import type { V1Node, V1PersistentVolumeClaim, V1Pod, V1Taint, V1Toleration } from '@kubernetes/client-node';
import { CHECKPOINT_VOLUME } from '../api/types';
import { parseQuantity, podRequests, type Totals } from './resources';

/** The owner that would recreate the pod if it were deleted, if any. */
export function controllingOwner(pod: V1Pod): { kind: string; name: string } | undefined {
  const ref = (pod.metadata?.ownerReferences ?? []).find((r) => r.controller);
  return ref ? { kind: ref.kind, name: ref.name } : undefined;
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

/** Does this toleration tolerate this taint? (the kubelet's and scheduler's rule) */
export function tolerates(t: V1Toleration, taint: V1Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key && t.key !== taint.key) return false;
  if (!t.key && t.operator !== 'Exists') return false;
  return t.operator === 'Exists' || (t.value ?? '') === (taint.value ?? '');
}

/** The target node's NoSchedule/NoExecute taints the pod does not tolerate. */
export function untoleratedTaints(pod: V1Pod, node: V1Node): V1Taint[] {
  const tolerations = pod.spec?.tolerations ?? [];
  return (node.spec?.taints ?? []).filter(
    (taint) => taint.effect !== 'PreferNoSchedule' && !tolerations.some((t) => tolerates(t, taint)),
  );
}

/** Allocatable minus what the node's live pods already request. */
export function freeOnNode(node: V1Node, podsOnNode: readonly V1Pod[]): Totals {
  const alloc = node.status?.allocatable ?? {};
  const used = podsOnNode
    .filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed')
    .map((p) => podRequests(p.spec ?? { containers: [] }))
    .reduce((a, b) => ({ cpu: a.cpu + b.cpu, memory: a.memory + b.memory }), { cpu: 0, memory: 0 });
  return {
    cpu: parseQuantity(alloc.cpu ?? '0') - used.cpu,
    memory: parseQuantity(alloc.memory ?? '0') - used.memory,
  };
}
