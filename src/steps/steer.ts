// Step 3 in Steer mode (StatefulSet, Job and other owners' pods): the operator cannot make
// a pod such an owner would accept, so the owner makes it. The source is evicted (its
// intent persisted first, budgets respected); the admission webhook pins the owner's next
// pod to the target node and marks it as this migration's; the step then waits for that
// pod to be Ready. A replacement the webhook did not steer is reported with where it went.
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_MIGRATION_UID, LABEL_MIGRATION, withDefaults } from '../api/types';
import { remainingMs, stepStartTime } from '../controller/status';
import { MigrationFailure } from '../errors';
import { paths } from '../kube/client';
import { targetPodState } from '../migration/podState';
import { claimSourcePod } from './claim';
import type { StepContext, StepOutcome } from './context';
import { evictOnce } from './evict';

export async function steerReplacement(ctx: StepContext): Promise<StepOutcome> {
  const { migration, status, client } = ctx;
  const { namespace, name, uid } = migration.metadata;
  const spec = withDefaults(migration.spec);
  const ref = status.sourcePod!;
  const owner = status.steer!.owner;
  const ownerName = `${owner.kind} ${owner.name}`;

  const all = (await client.get<{ items: V1Pod[] }>(paths.pods(namespace))).items;
  const steered = all.find((p) => p.metadata?.labels?.[LABEL_MIGRATION] === name && p.metadata?.annotations?.[ANNOTATION_MIGRATION_UID] === uid);
  if (steered) {
    status.targetPod = { name: steered.metadata!.name!, uid: steered.metadata!.uid!, node: spec.targetNode };
    const state = targetPodState(steered);
    if (state.kind === 'failed') throw new MigrationFailure(state.reason, state.message);
    if (state.kind === 'ready') return { done: true, message: `${ownerName} recreated pod ${steered.metadata!.name}, steered to ${spec.targetNode}, and it is Ready` };
    return waitForReady(ctx, `${state.message} (${ownerName}'s replacement, steered to ${spec.targetNode})`);
  }

  const source = all.find((p) => p.metadata?.uid === ref.uid);
  if (source && !source.metadata?.deletionTimestamp) {
    await claimSourcePod(client, migration, source);
    const r = await evictOnce(ctx, namespace, 'CreateTargetPod');
    if (!('kind' in r)) return r;
    if (r.kind === 'gone') {
      // It was there a moment ago, and this request did not remove it.
      throw new MigrationFailure('SourcePodChanged', `source pod ${ref.name} was removed by someone other than this migration while it was being evicted`);
    }
    return { done: false, requeueAfterMs: 1_000, message: `evicted source pod ${ref.name}; waiting for ${ownerName} to recreate it on ${spec.targetNode}` };
  }
  if (!ref.evictionRequestedAt) {
    throw new MigrationFailure('SourcePodChanged', `source pod ${ref.name} was removed by someone other than this migration before it evicted it`);
  }
  // Evicted. A pod the owner made since then that the webhook did not mark went elsewhere.
  const since = Date.parse(ref.evictionRequestedAt);
  const unsteered = all.find(
    (p) =>
      p.metadata?.uid !== ref.uid &&
      p.metadata?.ownerReferences?.some((o) => o.controller && o.uid === owner.uid) &&
      Date.parse(String(p.metadata?.creationTimestamp ?? 0)) >= since - 1_000,
  );
  if (unsteered) {
    const where = unsteered.spec?.nodeName ? `runs on ${unsteered.spec.nodeName}` : 'is not scheduled yet';
    throw new MigrationFailure(
      'ReplacementNotSteered',
      `${ownerName} recreated the pod as ${unsteered.metadata!.name}, which the admission webhook did not steer (was it reachable?); it ${where}, not necessarily on ${spec.targetNode}`,
    );
  }
  return waitForReady(ctx, `source pod ${ref.name} evicted; waiting for ${ownerName} to recreate it (steered to ${spec.targetNode})`);
}

/** Waits within readyTimeoutSeconds, counted from the start of step 3. */
function waitForReady({ migration, status, now }: StepContext, message: string): StepOutcome {
  const { readyTimeoutSeconds } = withDefaults(migration.spec);
  const left = remainingMs(stepStartTime(status, 'CreateTargetPod', now), readyTimeoutSeconds, now);
  if (left <= 0) throw new MigrationFailure('TargetPodNotReady', `no Ready replacement within ${readyTimeoutSeconds}s: ${message}`);
  return { done: false, requeueAfterMs: Math.min(left, 2_000), message };
}
