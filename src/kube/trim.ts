// What the informer caches keep of each object: only what reconciling reads, so that the
// operator's memory stays flat in the number of stored records (controller-runtime's cache
// TransformFunc). Every kept object still has its name, namespace, uid and resourceVersion.
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { FINALIZER, GROUP, type PodMigration, TERMINAL_PHASES } from '../api/types';

const OURS = `${GROUP}/`;

/** Annotations (or labels) of this operator's own (the cancel request, lineage, claims, the NodeDrain a record belongs to), none else. */
function ourAnnotations(a: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!a) return undefined;
  const kept = Object.entries(a).filter(([k]) => k.startsWith(OURS));
  return kept.length ? Object.fromEntries(kept) : undefined;
}

/**
 * A PodMigration without managed fields or others' annotations. One that has ended and
 * holds no finalizer is never acted on again (its spec is immutable): of its status only
 * what counts and lists need is kept, and its figures (what a ReclaimPolicy sums).
 */
export function trimMigration(pm: PodMigration): PodMigration {
  const m = pm.metadata;
  const metadata = {
    name: m.name,
    namespace: m.namespace,
    uid: m.uid,
    resourceVersion: m.resourceVersion,
    generation: m.generation,
    creationTimestamp: m.creationTimestamp,
    deletionTimestamp: m.deletionTimestamp,
    finalizers: m.finalizers,
    labels: ourAnnotations(m.labels),
    annotations: ourAnnotations(m.annotations),
  } as PodMigration['metadata'];
  const ended = TERMINAL_PHASES.includes(pm.status?.phase ?? 'Pending') && !m.finalizers?.includes(FINALIZER) && !m.deletionTimestamp;
  const s = pm.status;
  const status =
    ended && s
      ? {
          phase: s.phase,
          reason: s.reason,
          observedGeneration: s.observedGeneration,
          completionTime: s.completionTime,
          resources: s.resources,
        }
      : s;
  return { apiVersion: pm.apiVersion, kind: pm.kind, metadata, spec: pm.spec, status };
}

/** What reading a container's requests takes. */
const requestsOf = (c: V1Container): V1Container =>
  ({ name: c.name, resources: c.resources, restartPolicy: c.restartPolicy }) as V1Container;

/**
 * A pod the operator made, as the steps read it: identity, labels, owners and our
 * annotations; node and requests; phase, conditions and container states.
 */
export function trimPod(pod: V1Pod): V1Pod {
  const m = pod.metadata ?? {};
  const s = pod.spec;
  return {
    apiVersion: pod.apiVersion,
    kind: pod.kind,
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      creationTimestamp: m.creationTimestamp,
      deletionTimestamp: m.deletionTimestamp,
      labels: m.labels,
      annotations: ourAnnotations(m.annotations),
      ownerReferences: m.ownerReferences,
    },
    spec: s && {
      nodeName: s.nodeName,
      containers: s.containers.map(requestsOf),
      initContainers: s.initContainers?.map(requestsOf),
      overhead: s.overhead,
      resources: s.resources,
      resourceClaims: s.resourceClaims,
    },
    status: pod.status && {
      phase: pod.status.phase,
      reason: pod.status.reason,
      message: pod.status.message,
      nominatedNodeName: pod.status.nominatedNodeName,
      conditions: pod.status.conditions,
      containerStatuses: pod.status.containerStatuses,
      initContainerStatuses: pod.status.initContainerStatuses,
      resourceClaimStatuses: pod.status.resourceClaimStatuses,
    },
  };
}
