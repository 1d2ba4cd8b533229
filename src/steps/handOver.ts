// Step 4 in Surge mode: the Ready copy is handed over to the source's ReplicaSet, which
// then removes the source itself. The source is given the lowest pod-deletion-cost, then
// the copy is given the selector labels it was made without: the ReplicaSet adopts it,
// has one pod too many, and removes the one it ranks first, the source. The Deployment,
// its template and its replica count are never touched (GitOps owns them).
import type { V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import { ANNOTATION_DELETION_COST } from '../api/types';
import { MigrationFailure, ignoreNotFound } from '../errors';
import { paths } from '../kube/client';
import type { StepContext, StepOutcome } from './context';
import { evictSource } from './evict';

/** The lowest pod-deletion-cost there is: the ReplicaSet removes this pod first. */
export const LOWEST_COST = '-2147483648';
/** How long after the adoption the ReplicaSet has to remove the source before it is evicted. */
const ADOPTION_GRACE_MS = 15_000;

export async function handOver(ctx: StepContext, source: V1Pod, copy: V1Pod): Promise<StepOutcome> {
  const { migration, status, client, now, deadline } = ctx;
  const { namespace } = migration.metadata;
  const { replicaSet, withheldLabels } = status.surge!;
  const ref = status.sourcePod!;
  const rs = await ignoreNotFound(client.get<V1ReplicaSet>(paths.replicaSet(namespace, replicaSet.name)));
  if (!rs || rs.metadata?.uid !== replicaSet.uid || rs.metadata?.deletionTimestamp) {
    throw new MigrationFailure('SourcePodChanged', `ReplicaSet ${replicaSet.name}, which owns pod ${ref.name}, is gone or being deleted`);
  }
  const adopted = copy.metadata?.ownerReferences?.some((r) => r.controller && r.uid === replicaSet.uid) ?? false;

  if (!ref.evictionRequestedAt) {
    if (deadline) throw new MigrationFailure(deadline.reason, deadline.message);
    // Settled: the ReplicaSet has exactly its replicas, all Ready, so that once it adopts
    // the copy the only pod it can prefer to remove is the one with the lowest cost.
    const want = rs.spec?.replicas ?? 1;
    const s = rs.status;
    if ((s?.observedGeneration ?? 0) < (rs.metadata?.generation ?? 0) || s?.replicas !== want || s?.readyReplicas !== want) {
      return {
        done: false,
        requeueAfterMs: 2_000,
        reason: 'ReplicaSetNotSettled',
        message: `waiting for ReplicaSet ${replicaSet.name} to have its ${want} replicas Ready (${s?.readyReplicas ?? 0} of ${s?.replicas ?? 0}) before handing pod ${copy.metadata!.name} over`,
      };
    }
    // On record before anything changes hands: from here on the source may go at any moment.
    ref.evictionRequestedAt = now;
    await ctx.persist();
  }
  if (deadline && !adopted) throw new MigrationFailure(deadline.reason, deadline.message);

  if (source.metadata?.annotations?.[ANNOTATION_DELETION_COST] !== LOWEST_COST) {
    await client.mergePatch(paths.pod(namespace, ref.name), { metadata: { annotations: { [ANNOTATION_DELETION_COST]: LOWEST_COST } } });
  }
  const labels = copy.metadata?.labels ?? {};
  if (Object.entries(withheldLabels).some(([k, v]) => labels[k] !== v)) {
    await client.mergePatch(paths.pod(namespace, copy.metadata!.name!), { metadata: { labels: withheldLabels } });
    return { done: false, requeueAfterMs: 1_000, message: `gave pod ${copy.metadata!.name} the labels of ReplicaSet ${replicaSet.name}; waiting for it to adopt the pod and remove ${ref.name}` };
  }
  if (!adopted) {
    return { done: false, requeueAfterMs: 1_000, message: `waiting for ReplicaSet ${replicaSet.name} to adopt pod ${copy.metadata!.name}` };
  }
  // Adopted, and the source still runs: the ReplicaSet removed another pod first (one that
  // became un-Ready meanwhile, say). The source is then evicted like a bare pod's, and the
  // ReplicaSet makes up its count.
  if (Date.parse(now) - Date.parse(ref.evictionRequestedAt) < ADOPTION_GRACE_MS) {
    return { done: false, requeueAfterMs: 1_000, message: `ReplicaSet ${replicaSet.name} adopted pod ${copy.metadata!.name}; waiting for it to remove ${ref.name}` };
  }
  const r = await evictSource(client, namespace, status, 'DeleteSourcePod', now);
  if (r.kind === 'evicted' || r.kind === 'gone') return { done: false, requeueAfterMs: 1_000, message: `evicted source pod ${ref.name}, which ReplicaSet ${replicaSet.name} kept` };
  return { done: false, requeueAfterMs: r.retryAfterMs, reason: r.kind === 'blocked' ? 'EvictionBlocked' : 'EvictionRefused', message: `eviction of source pod ${ref.name} ${r.kind === 'blocked' ? 'is blocked' : 'was refused'}: ${r.message}` };
}
