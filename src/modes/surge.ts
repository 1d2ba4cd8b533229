// Surge: a ReplicaSet's pod (and so a Deployment's). The copy is made without one label the
// ReplicaSet's selector needs, so nothing adopts it while it starts; once it is Ready it is
// handed over: the source is given the lowest pod-deletion-cost, then the copy the labels
// it was made without. The ReplicaSet adopts it, has one pod too many, and removes the one
// it ranks first, the source. The Deployment, its template and its replica count are never
// touched (GitOps owns them). Should the ReplicaSet remove another pod instead, the source
// is evicted after a grace period and the ReplicaSet makes up its count.
import type { V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import { ANNOTATION_DELETION_COST } from '../api/types';
import { releaseClaim } from '../actions/claim';
import { evictSource } from '../actions/evict';
import { MigrationFailure, ignoreNotFound, isRefusal } from '../errors';
import { paths } from '../kube/client';
import type { StepContext, StepOutcome, UndoContext, UndoResult } from '../migration/context';
import { describePod, isPodReady } from '../migration/podState';
import { LOWEST_COST } from '../migration/surge';
import type { Mode } from './mode';
import { beforeRetire, cancellableUntilStep4Eviction, placeCopy, removeMade } from './shared';

/** How often a source whose copy is starting is looked at, for a ReplicaSet that removed it. */
const SOURCE_RECHECK_MS = 5_000;
/** How long after the adoption the ReplicaSet has to remove the source before it is evicted. */
const ADOPTION_GRACE_MS = 15_000;

export const surge: Mode = {
  async place(ctx) {
    const outcome = await placeCopy(ctx);
    if (outcome.done) return outcome;
    await sourceStillThere(ctx);
    // The source is not watched (only the pods the operator made are): looked at again soon.
    return { ...outcome, requeueAfterMs: Math.min(outcome.requeueAfterMs, SOURCE_RECHECK_MS) };
  },
  async retire(ctx) {
    const before = await beforeRetire(ctx, false);
    if ('outcome' in before) {
      // The source is gone after the hand-over began: moved only if the ReplicaSet took the copy.
      if (before.outcome.done) await adopted(ctx);
      return before.outcome;
    }
    return handOver(ctx, before.source, before.target);
  },
  undo,
  cancellable: cancellableUntilStep4Eviction,
};

/**
 * While the copy starts, the ReplicaSet may remove the source itself (a scale-down, a
 * rollout, the Deployment deleted): the copy is then no longer wanted, and the migration
 * ends at once rather than when the copy is Ready (minutes, for an AI pod).
 */
async function sourceStillThere({ migration, status, client }: StepContext): Promise<void> {
  const ref = status.sourcePod!;
  const source = await ignoreNotFound(client.get<V1Pod>(paths.pod(migration.metadata.namespace, ref.name)));
  if (source?.metadata?.uid === ref.uid && !source.metadata?.deletionTimestamp) return;
  const how = source?.metadata?.uid === ref.uid ? 'is being deleted' : source ? 'was replaced by another pod of that name' : 'is gone';
  throw new MigrationFailure(
    'SourcePodChanged',
    `source pod ${ref.name} ${how}: removed before the copy was handed over, by ReplicaSet ${status.surge!.replicaSet.name} (a scale-down, a rollout, a deletion) or by someone else`,
  );
}

/**
 * Throws unless the copy is the ReplicaSet's: a source removed (a scale-down, a deletion)
 * before the ReplicaSet adopted the copy leaves a copy no one owns, which the rollback removes.
 */
async function adopted({ migration, status, client }: StepContext): Promise<void> {
  const { replicaSet } = status.surge!;
  const copy = await ignoreNotFound(client.get<V1Pod>(paths.pod(migration.metadata.namespace, status.targetPod!.name)));
  if (
    copy?.metadata?.uid === status.targetPod!.uid &&
    (copy.metadata?.ownerReferences ?? []).some((r) => r.controller && r.uid === replicaSet.uid)
  )
    return;
  throw new MigrationFailure(
    'SourcePodChanged',
    `source pod ${status.sourcePod!.name} was removed before ReplicaSet ${replicaSet.name} adopted pod ${status.targetPod!.name} (by the ReplicaSet: a scale-down or a rollout; or by someone else)`,
  );
}

/**
 * The ReplicaSet holds the workload: a copy it has not adopted is never needed, whether the
 * source still runs or the ReplicaSet removed it, and is removed; a copy it adopted is its
 * pod, and is kept. A source that still runs is released (its claim, its deletion cost).
 */
async function undo(ctx: UndoContext): Promise<UndoResult> {
  const { status, client, migration, ref, source, sourceRuns, pods } = ctx;
  const rs = status.surge!.replicaSet;
  const adopted = pods.filter((p) => (p.metadata?.ownerReferences ?? []).some((o) => o.controller && o.uid === rs.uid));
  const removed = await removeMade({ ...ctx, pods: pods.filter((p) => !adopted.includes(p)) });
  // Its claim, and the lowest deletion cost the hand-over gave it.
  if (sourceRuns) await releaseClaim(client, migration, source!);
  const runs = sourceRuns
    ? `source pod ${ref.name} still runs on ${source!.spec?.nodeName}`
    : `source pod ${ref.name} was removed by ReplicaSet ${rs.name} (or someone else), which holds the workload`;
  if (adopted.length) {
    const kept = adopted.map((p) => `${p.metadata!.name} on ${p.spec?.nodeName ?? 'no node'} (${describePod(p)})`).join(', ');
    const message = `${removed}kept ${kept}: ReplicaSet ${rs.name} adopted it, it is its pod now; ${runs}`;
    ctx.record('Warning', 'TargetPodKept', message);
    return { done: true, outcome: { ok: false, reason: 'TargetPodKept', message } };
  }
  return {
    done: true,
    outcome: { ok: true, reason: sourceRuns ? 'SourcePodRunning' : 'OwnerHoldsWorkload', message: `${removed}${runs}` },
  };
}

async function handOver(ctx: StepContext, source: V1Pod, copy: V1Pod): Promise<StepOutcome> {
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
    // Settled: the ReplicaSet has exactly its replicas. Once it adopts the copy it removes
    // the pod it ranks first: not assigned, not Running, not Ready, then the lowest cost
    // (the source's). A Ready source waits until every replica is Ready, so that the source
    // is the only pod it can prefer. A source not Ready (a finished container: the very pod
    // a reclaim moves) is outranked only by pods that are not Ready either, so whichever goes
    // no Ready pod is lost (and a source kept is evicted below).
    const want = rs.spec?.replicas ?? 1;
    const s = rs.status;
    const sourceReady = isPodReady(source);
    if (
      (s?.observedGeneration ?? 0) < (rs.metadata?.generation ?? 0) ||
      s?.replicas !== want ||
      (sourceReady && s?.readyReplicas !== want)
    ) {
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
  // Past the deadline, adopted or not: the copy is the ReplicaSet's if it adopted it, and the
  // source it kept runs on (the rollback says so); a blocked eviction is not waited on forever.
  if (deadline) throw new MigrationFailure(deadline.reason, deadline.message);

  if (source.metadata?.annotations?.[ANNOTATION_DELETION_COST] !== LOWEST_COST) {
    await client.mergePatch(paths.pod(namespace, ref.name), { metadata: { annotations: { [ANNOTATION_DELETION_COST]: LOWEST_COST } } });
  }
  const labels = copy.metadata?.labels ?? {};
  if (Object.entries(withheldLabels).some(([k, v]) => labels[k] !== v)) {
    try {
      await client.mergePatch(paths.pod(namespace, copy.metadata!.name!), { metadata: { labels: withheldLabels } });
    } catch (e) {
      // A policy that does not let pods be relabelled: the ReplicaSet could never adopt the copy.
      if (!isRefusal(e)) throw e;
      throw new MigrationFailure(
        'TargetPodRejected',
        `the API server refused to give pod ${copy.metadata!.name} the labels of ReplicaSet ${replicaSet.name} (${Object.keys(withheldLabels).join(', ')}), so it cannot adopt it: ${(e as Error).message}`,
      );
    }
    return {
      done: false,
      requeueAfterMs: 1_000,
      message: `gave pod ${copy.metadata!.name} the labels of ReplicaSet ${replicaSet.name}; waiting for it to adopt the pod and remove ${ref.name}`,
    };
  }
  if (!adopted) {
    return { done: false, requeueAfterMs: 1_000, message: `waiting for ReplicaSet ${replicaSet.name} to adopt pod ${copy.metadata!.name}` };
  }
  // Adopted, and the source still runs: the ReplicaSet removed another pod first (one that
  // became un-Ready meanwhile, say). The source is then evicted like a bare pod's, and the
  // ReplicaSet makes up its count.
  if (Date.parse(now) - Date.parse(ref.evictionRequestedAt) < ADOPTION_GRACE_MS) {
    return {
      done: false,
      requeueAfterMs: 1_000,
      message: `ReplicaSet ${replicaSet.name} adopted pod ${copy.metadata!.name}; waiting for it to remove ${ref.name}`,
    };
  }
  // Evicting a Ready source must leave the ReplicaSet its replicas Ready (counted from its
  // pods, not from a status that may lag): it removed another pod, and until it has its
  // replicas Ready without the source the source stays, and the deadline ends the migration
  // with the copy the ReplicaSet's.
  const want = rs.spec?.replicas ?? 1;
  const readyOthers = async () =>
    (
      await client.get<{ items: V1Pod[] }>(paths.pods(namespace), {
        labelSelector: Object.entries(rs.spec?.selector?.matchLabels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(','),
      })
    ).items.filter(
      (p) =>
        p.metadata?.name !== ref.name &&
        !p.metadata?.deletionTimestamp &&
        p.metadata?.ownerReferences?.some((o) => o.controller && o.uid === replicaSet.uid) &&
        isPodReady(p),
    ).length;
  if (isPodReady(source) && (await readyOthers()) < want) {
    return {
      done: false,
      requeueAfterMs: 2_000,
      reason: 'ReplicaSetNotSettled',
      message: `ReplicaSet ${replicaSet.name} adopted pod ${copy.metadata!.name} but removed another pod and kept ${ref.name}; evicting it now would leave fewer than ${want} Ready, so it stays`,
    };
  }
  const r = await evictSource(client, namespace, status, 'DeleteSourcePod', now);
  if (r.kind === 'evicted' || r.kind === 'gone')
    return { done: false, requeueAfterMs: 1_000, message: `evicted source pod ${ref.name}, which ReplicaSet ${replicaSet.name} kept` };
  return {
    done: false,
    requeueAfterMs: r.retryAfterMs,
    reason: r.kind === 'blocked' ? 'EvictionBlocked' : 'EvictionRefused',
    message: `eviction of source pod ${ref.name} ${r.kind === 'blocked' ? 'is blocked' : 'was refused'}: ${r.message}`,
  };
}
