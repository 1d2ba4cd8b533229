// Step 4: remove the source pod through the Eviction API, now that its copy is Ready, so
// PodDisruptionBudgets are respected. Both pods are read from the API server first: the
// copy must be Ready and not terminating at that moment, and the source must still be
// this migration's. Before the first eviction request the migration persists that it is
// about to evict (status.sourcePod.evictionRequestedAt), so a source found gone later
// counts as moved only if this migration evicted it. A budget (429) or any other refusal
// is retried with backoff; at the migration's deadline it is rolled back like any failure
// before the source is gone.
import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigrationStatus } from '../api/types';
import { MigrationFailure, ignoreNotFound } from '../errors';
import { paths } from '../kube/client';
import { isPodReady, targetPodState } from '../migration/podState';
import { claimSourcePod } from './claim';
import type { Step, StepContext, StepOutcome } from './context';
import { evictOnce } from './evict';
import { handOver } from './handOver';

export const deleteSourcePod: Step = async (ctx) => {
  const { migration, status, client, deadline } = ctx;
  const { namespace } = migration.metadata;
  const ref = status.sourcePod!;
  const targetName = status.targetPod!.name;
  // A copy is looked at in the cache first (it is read from the API server again just
  // before the eviction); a hand-over or a steered pod, straight away.
  const [source, target] = await Promise.all([
    ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, ref.name))),
    status.mode === 'Copy' ? watchedPod(ctx) : ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, targetName))),
  ]);

  const sameSource = source?.metadata?.uid === ref.uid;
  if (!sameSource || source?.metadata?.deletionTimestamp) {
    const how = sameSource ? 'is being deleted' : source ? 'was replaced by another pod of that name' : 'is gone';
    // Evicted by this migration: in step 3 already with DeleteBeforeCreate, or by a request
    // whose answer a crash lost.
    // (In Steer mode the owner has made a new pod of the same name by now.)
    if (ref.evictionRequestedAt) return { done: true, message: `source pod ${ref.name} evicted from ${ref.node}${sameSource ? ' (terminating)' : ''}` };
    throw new MigrationFailure('SourcePodChanged', `source pod ${ref.name} ${how}, removed by someone other than this migration before it evicted it`);
  }
  const notReady = copyNotReady(status, target);
  if (notReady) {
    if (deadline) throw new MigrationFailure(deadline.reason, deadline.message);
    return notReady;
  }
  await claimSourcePod(client, migration, source!);
  if (status.mode === 'Surge') return handOver(ctx, source!, target!);
  if (deadline) throw new MigrationFailure(deadline.reason, deadline.message);

  // The copy once more, as late as possible: still there, Ready and not being deleted.
  const recheck = async () => copyNotReady(status, (ctx.fresh.target = await ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, targetName)))));
  const r = await evictOnce(ctx, namespace, 'DeleteSourcePod', recheck);
  if (!('kind' in r)) return r;
  if (r.kind === 'gone') {
    // It was there a moment ago, and this request did not remove it.
    throw new MigrationFailure('SourcePodChanged', `source pod ${ref.name} was removed by someone other than this migration while it was being evicted`);
  }
  return { done: true, message: `source pod ${ref.name} evicted from ${ref.node}` };
};

/**
 * This migration's pod as the watch last saw it: from the cache, or from the API server
 * when the cache has no pod of that UID (it may lag behind, or the pod is gone).
 */
export async function watchedPod({ migration, status, client, targetPods }: StepContext): Promise<V1Pod | undefined> {
  const { namespace } = migration.metadata;
  const { name, uid } = status.targetPod!;
  const cached = targetPods.get(name, namespace);
  if (cached?.metadata?.uid === uid) return cached;
  return ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, name)));
}

/**
 * Throws if the copy is gone, replaced, being deleted or failed; returns what to wait for
 * while it is not Ready; undefined when the source may go. The source is never removed
 * unless its replacement is Ready right now.
 */
function copyNotReady(status: PodMigrationStatus, copy: V1Pod | undefined): StepOutcome | undefined {
  const name = status.targetPod!.name;
  if (!copy || copy.metadata?.uid !== status.targetPod!.uid) throw new MigrationFailure('TargetPodLost', `pod ${name} disappeared before the source pod was evicted`);
  const state = targetPodState(copy);
  if (state.kind === 'failed') throw new MigrationFailure(state.reason, `${state.message}; the source pod was not evicted`);
  if (isPodReady(copy)) return undefined;
  return { done: false, requeueAfterMs: 30_000, reason: 'TargetPodNotReady', message: `waiting for pod ${name} to be Ready again before evicting the source` };
}
