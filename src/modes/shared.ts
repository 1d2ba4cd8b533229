// What several modes do alike: make the copy and wait until it is Ready (Copy, DeleteFirst,
// Surge), look at both pods before the source goes (every mode's step 4), and undo a
// migration whose source is still there to fall back to.
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_MIGRATION_UID, type PodMigrationStatus, withDefaults } from '../api/types';
import { claimSourcePod, releaseClaim } from '../actions/claim';
import { evictOnce } from '../actions/evict';
import { classNotSeenYet, neverPreempting } from '../actions/priority';
import { ApiError, MigrationFailure, ignoreNotFound, isAlreadyExists, isRefusal } from '../errors';
import { paths } from '../kube/client';
import type { StepContext, StepOutcome, UndoContext, UndoResult } from '../migration/context';
import { buildTargetPod, destinationOf, targetPodName } from '../migration/optimizedPod';
import { describePod, isPodReady, targetPodState } from '../migration/podState';
import { canRollBack, remainingMs, stepStartTime } from '../migration/status';

/**
 * The copy already made for this migration, if any. From the cache; the API server is asked
 * only when the cache has no pod that status says was made (it may lag behind the create).
 * One made but not yet on record is found by the create's AlreadyExists.
 */
export async function findCopy({ migration, status, client, targetPods }: StepContext): Promise<V1Pod | undefined> {
  const { namespace, uid } = migration.metadata;
  const podName = targetPodName(migration.spec.podName, uid);
  const cached = targetPods.get(podName, namespace);
  const existing = cached ?? (status.targetPod?.uid ? await ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, podName))) : undefined);
  if (existing) return ours(existing, uid);
  if (status.targetPod?.uid) {
    throw new MigrationFailure('TargetPodDeleted', `pod ${podName} was deleted by someone else before it became Ready`);
  }
  return undefined;
}

/** Creates the copy: from the live source, or (DeleteBeforeCreate) from the captured manifest. */
export async function createCopy({ migration, status, client, fresh }: StepContext): Promise<V1Pod> {
  const { namespace, name, uid } = migration.metadata;
  const podName = targetPodName(migration.spec.podName, uid);
  let source = status.sourcePodManifest;
  if (!source) {
    // Copy the live pod (as read in this reconcile, or now), and only while it is still this migration's.
    const live = fresh.source ?? (await ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, status.sourcePod!.name))));
    if (live?.metadata?.uid !== status.sourcePod?.uid || live?.metadata?.deletionTimestamp) {
      throw new MigrationFailure('SourcePodChanged', `pod ${status.sourcePod!.name} was deleted or replaced after its state was captured`);
    }
    source = fresh.source = await claimSourcePod(client, migration, live!);
  }
  const built = buildTargetPod(source, {
    name: podName,
    where: destinationOf(migration.spec),
    migrationName: name,
    migrationUid: uid,
    keep: new Set((status.containers ?? []).filter((c) => c.migrated).map((c) => c.name)),
    checkpointPVC: status.checkpointPVC,
    withhold: status.surge?.withheldLabels,
  });
  const body = withDefaults(migration.spec).allowPreemption ? built : await neverPreempting(client, built);
  try {
    return await client.create<V1Pod>(paths.pods(namespace), body);
  } catch (e) {
    if (isAlreadyExists(e)) return ours(await client.get<V1Pod>(paths.pod(namespace, podName)), uid);
    if (classNotSeenYet(e)) throw new Error(`the API server does not know the copy's PriorityClass yet: ${(e as Error).message}`);
    if (e instanceof ApiError && e.code === 403 && /exceeded quota/.test(e.message)) {
      throw new MigrationFailure('QuotaExceeded', `a ResourceQuota refused pod ${podName}: ${e.message}`);
    }
    if (isRefusal(e)) {
      throw new MigrationFailure('TargetPodRejected', `the API server refused pod ${podName}: ${(e as Error).message}`);
    }
    throw e;
  }
}

function ours(pod: V1Pod, migrationUid: string): V1Pod {
  if (pod.metadata?.annotations?.[ANNOTATION_MIGRATION_UID] !== migrationUid) {
    throw new MigrationFailure('TargetNameConflict', `a pod named ${pod.metadata?.name} exists and was not made by this migration`);
  }
  return pod;
}

/**
 * Records the copy and classifies it: Ready (step 3 is done), failed (the migration fails
 * at once), or still starting, waited for within readyTimeoutSeconds from the start of step 3.
 */
export function awaitCopy({ migration, status, now }: StepContext, pod: V1Pod): StepOutcome {
  const spec = withDefaults(migration.spec);
  recordTargetPod(status, pod, spec.targetNode);
  const state = targetPodState(pod, Date.parse(now));
  if (state.kind === 'failed') throw new MigrationFailure(state.reason, state.message);
  if (state.kind === 'ready') return { done: true, message: `pod ${pod.metadata!.name} is Ready on ${pod.spec?.nodeName}` };
  const left = remainingMs(stepStartTime(status, 'CreateTargetPod', now), spec.readyTimeoutSeconds, now);
  if (left <= 0) {
    throw new MigrationFailure('TargetPodNotReady', `pod ${pod.metadata!.name} did not become Ready within ${spec.readyTimeoutSeconds}s`);
  }
  const deadline = new Date(Date.parse(now) + left).toISOString();
  return {
    done: false,
    requeueAfterMs: Math.min(left, state.retryAfterMs ?? left),
    message: `${state.message}; ready deadline ${deadline}`,
  };
}

/** The pod the move made, and the node it went to: spec.targetNode, or where kube-scheduler bound it. */
export function recordTargetPod(status: PodMigrationStatus, pod: V1Pod, targetNode: string | undefined): void {
  const node = pod.spec?.nodeName ?? targetNode;
  status.targetPod = { name: pod.metadata!.name!, uid: pod.metadata!.uid!, ...(node ? { node } : {}) };
  if (node) status.targetNode = node;
}

/** Step 3 of a mode that makes its copy while the source runs (Copy, Surge). */
export async function placeCopy(ctx: StepContext): Promise<StepOutcome> {
  const pod = (await findCopy(ctx)) ?? (await createCopy(ctx));
  return awaitCopy(ctx, pod);
}

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
export function copyNotReady(status: PodMigrationStatus, copy: V1Pod | undefined): StepOutcome | undefined {
  const name = status.targetPod!.name;
  if (!copy || copy.metadata?.uid !== status.targetPod!.uid)
    throw new MigrationFailure('TargetPodLost', `pod ${name} disappeared before the source pod was evicted`);
  const state = targetPodState(copy);
  if (state.kind === 'failed') throw new MigrationFailure(state.reason, `${state.message}; the source pod was not evicted`);
  if (isPodReady(copy)) return undefined;
  return {
    done: false,
    requeueAfterMs: 30_000,
    reason: 'TargetPodNotReady',
    message: `waiting for pod ${name} to be Ready again before evicting the source`,
  };
}

/**
 * What every mode's step 4 looks at first, read from the API server (the copy from the
 * cache when `copyFromCache`; it is read again just before an eviction): a source that is
 * gone counts as moved only if this migration asked to evict it; the pod on the target
 * must be Ready; the source must still be this migration's. Returns the step's outcome,
 * or both pods when the source may go.
 */
export async function beforeRetire(
  ctx: StepContext,
  copyFromCache: boolean,
): Promise<{ outcome: StepOutcome } | { source: V1Pod; target: V1Pod }> {
  const { migration, status, client, deadline } = ctx;
  const { namespace } = migration.metadata;
  const ref = status.sourcePod!;
  const [source, target] = await Promise.all([
    ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, ref.name))),
    copyFromCache ? watchedPod(ctx) : ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, status.targetPod!.name))),
  ]);
  const sameSource = source?.metadata?.uid === ref.uid;
  if (!sameSource || source?.metadata?.deletionTimestamp) {
    const how = sameSource ? 'is being deleted' : source ? 'was replaced by another pod of that name' : 'is gone';
    // Evicted by this migration: in step 3 already (DeleteFirst, Steer), or by a request
    // whose answer a crash lost.
    if (ref.evictionRequestedAt)
      return { outcome: { done: true, message: `source pod ${ref.name} evicted from ${ref.node}${sameSource ? ' (terminating)' : ''}` } };
    throw new MigrationFailure(
      'SourcePodChanged',
      `source pod ${ref.name} ${how}, removed by someone other than this migration before it evicted it`,
    );
  }
  const notReady = copyNotReady(status, target);
  if (notReady) {
    if (deadline) throw new MigrationFailure(deadline.reason, deadline.message);
    return { outcome: notReady };
  }
  await claimSourcePod(client, migration, source!);
  return { source: source!, target: target! };
}

/**
 * Step 4 by eviction: the source goes through the Eviction API once its copy is Ready (read
 * once more, as late as possible: still there, Ready and not being deleted).
 */
export async function retireByEviction(ctx: StepContext, copyFromCache: boolean): Promise<StepOutcome> {
  const { migration, status, client, deadline } = ctx;
  const { namespace } = migration.metadata;
  const ref = status.sourcePod!;
  const before = await beforeRetire(ctx, copyFromCache);
  if ('outcome' in before) return before.outcome;
  if (deadline) throw new MigrationFailure(deadline.reason, deadline.message);
  const targetName = status.targetPod!.name;
  const recheck = async () =>
    copyNotReady(status, (ctx.fresh.target = await ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, targetName)))));
  const r = await evictOnce(ctx, namespace, 'DeleteSourcePod', recheck);
  if (!('kind' in r)) return r;
  if (r.kind === 'gone') {
    // It was there a moment ago, and this request did not remove it.
    throw new MigrationFailure(
      'SourcePodChanged',
      `source pod ${ref.name} was removed by someone other than this migration while it was being evicted`,
    );
  }
  return { done: true, message: `source pod ${ref.name} evicted from ${ref.node}` };
}

/**
 * A cancellation is honoured until step 4 has asked to evict the source (from then on the
 * workload may already have moved); it rolls back as a failure does.
 */
export function cancellableUntilStep4Eviction(status: PodMigrationStatus): boolean {
  if (!status.phase || status.phase === 'Pending') return true;
  return canRollBack(status.phase) && !(status.phase === 'DeletingSourcePod' && status.sourcePod?.evictionRequestedAt);
}

/** The pods made are kept (the source is not there to fall back to), and why. */
export function keep(ctx: Pick<UndoContext, 'pods' | 'log' | 'record'>, why: string): UndoResult {
  const kept = ctx.pods.map((p) => `${p.metadata!.name} on ${p.spec?.nodeName ?? 'no node'} (${describePod(p)})`).join(', ');
  const message = `kept ${kept}: ${why}`;
  ctx.log.warn({ targets: ctx.pods.map((p) => p.metadata?.name) }, message);
  ctx.record('Warning', 'TargetPodKept', message);
  return { done: true, outcome: { ok: false, reason: 'TargetPodKept', message } };
}

/** Removes the pods this migration made (UID preconditions); returns what the status says of it. */
export async function removeMade(ctx: UndoContext): Promise<string> {
  const { migration, client, log, pods } = ctx;
  for (const p of pods) {
    if (p.metadata?.deletionTimestamp) continue;
    await ignoreNotFound(
      client.delete(paths.pod(migration.metadata.namespace, p.metadata!.name!), {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        preconditions: { uid: p.metadata!.uid },
      }),
    );
    log.info({ pod: p.metadata!.name }, 'removed target pod');
    ctx.record('Normal', 'TargetPodRemoved', `removed pod ${p.metadata!.name}`);
  }
  return pods.length > 0 ? `removed pod ${pods.map((p) => p.metadata!.name).join(', ')}; ` : '';
}

/**
 * Undoes a migration whose pods are copies of a source that may still run: they are removed
 * only while the source (same UID) runs and is not being deleted, otherwise they may be all
 * that is left of the workload, and are kept. `gone` says why when they are kept.
 */
export async function undoWhileSourceRuns(ctx: UndoContext, gone: (state: string) => string): Promise<UndoResult> {
  const { ref, source, found, sourceRuns, pods } = ctx;
  if (!sourceRuns) {
    const state = source ? 'is being deleted' : found ? 'was replaced by another pod of that name' : 'is gone';
    if (pods.length === 0) {
      return {
        done: true,
        outcome: { ok: false, reason: 'NoPodLeft', message: `source pod ${ref.name} ${state} and this migration has no pod left` },
      };
    }
    return keep(ctx, gone(state));
  }
  const removed = await removeMade(ctx);
  await releaseClaim(ctx.client, ctx.migration, source!);
  return {
    done: true,
    outcome: { ok: true, reason: 'SourcePodRunning', message: `${removed}source pod ${ref.name} still runs on ${source!.spec?.nodeName}` },
  };
}
