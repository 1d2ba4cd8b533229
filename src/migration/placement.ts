// What kube-scheduler would certainly refuse about a node for a pod, checked before a move
// that takes the pod down first (Steer, DeleteBeforeCreate): taints the pod does not
// tolerate, its node selector and required node affinity, and room (requests against
// allocatable, minus what the node's pods request). The scheduler still decides; this
// only avoids a downtime that could not end on that node. Pure functions.
import type { V1Node, V1NodeSelector, V1NodeSelectorRequirement, V1Pod, V1Taint, V1Toleration } from '@kubernetes/client-node';
import { allRequests, formatQuantity, parseQuantity } from './resources';

/** Does the toleration tolerate the taint? (the scheduler's TolerationsTolerateTaint) */
function tolerates(t: V1Toleration, taint: V1Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.operator === 'Exists') return !t.key || t.key === taint.key;
  return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
}

function requirementHolds(r: V1NodeSelectorRequirement, value: string | undefined): boolean {
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      if (value === undefined || values.length !== 1) return false;
      const [a, b] = [Number(value), Number(values[0])];
      return r.operator === 'Gt' ? a > b : a < b;
    }
    default:
      return false;
  }
}

/** Does the node satisfy the selector (any of its terms)? Pin-free: matchFields on metadata.name count. */
export function nodeSelectorMatches(selector: V1NodeSelector, node: V1Node): boolean {
  const labels = node.metadata?.labels ?? {};
  const fields: Record<string, string> = { 'metadata.name': node.metadata!.name! };
  return (selector.nodeSelectorTerms ?? []).some(
    (t) =>
      (t.matchExpressions ?? []).every((r) => requirementHolds(r, labels[r.key])) &&
      (t.matchFields ?? []).every((r) => requirementHolds(r, fields[r.key])),
  );
}

/** Why the scheduler would not put `pod` on `node`, apart from room; undefined if nothing. */
export function nodeExcludes(pod: V1Pod, node: V1Node): string | undefined {
  const name = node.metadata!.name!;
  const labels = node.metadata?.labels ?? {};
  const untolerated = (node.spec?.taints ?? []).filter(
    (taint) =>
      (taint.effect === 'NoSchedule' || taint.effect === 'NoExecute') && !(pod.spec?.tolerations ?? []).some((t) => tolerates(t, taint)),
  );
  if (untolerated.length) {
    return `node ${name} has taints the pod does not tolerate: ${untolerated.map((t) => `${t.key}${t.value ? `=${t.value}` : ''}:${t.effect}`).join(', ')}`;
  }
  const wrong = Object.entries(pod.spec?.nodeSelector ?? {}).filter(([k, v]) => labels[k] !== v);
  if (wrong.length) return `node ${name} does not match the pod's nodeSelector (${wrong.map(([k, v]) => `${k}=${v}`).join(', ')})`;
  const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  const fields: Record<string, string> = { 'metadata.name': name };
  // The pin of an earlier migration (matchFields on metadata.name) is replaced on the move.
  const matches = terms.some(
    (t) =>
      (t.matchExpressions ?? []).every((r) => requirementHolds(r, labels[r.key])) &&
      (t.matchFields ?? []).filter((r) => r.key !== 'metadata.name').every((r) => requirementHolds(r, fields[r.key])),
  );
  if (terms.length && !matches) return `node ${name} does not match the pod's required node affinity`;
  return undefined;
}

/** What `pod` requests that `node` has no room left for, given the pods bound to it; undefined if it fits. */
export function lacksRoom(pod: V1Pod, node: V1Node, podsOnNode: readonly V1Pod[]): string | undefined {
  const allocatable = node.status?.allocatable ?? {};
  const live = podsOnNode.filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
  const used = new Map<string, number>();
  for (const p of live) for (const [k, v] of allRequests(p.spec!)) used.set(k, (used.get(k) ?? 0) + v);
  const short: string[] = [];
  for (const [resource, want] of allRequests(pod.spec!)) {
    if (want <= 0) continue;
    const has = allocatable[resource] === undefined ? 0 : parseQuantity(allocatable[resource]);
    const free = has - (used.get(resource) ?? 0);
    if (want > free)
      short.push(
        `${resource}: requests ${formatQuantity(resource, want)}, ${formatQuantity(resource, Math.max(free, 0))} free of ${formatQuantity(resource, has)}`,
      );
  }
  if (live.length + 1 > parseQuantity(allocatable.pods ?? '110')) short.push(`pods: ${live.length} of ${allocatable.pods ?? 110} already`);
  return short.length ? `node ${node.metadata!.name} has no room for the pod (${short.join('; ')})` : undefined;
}
