// DeleteFirst: a bare pod with strategy DeleteBeforeCreate (ReadWriteOnce claims attach to
// one node at a time). Step 3 evicts the source and waits until it has terminated, then
// makes the copy, which mounts the same claims on the target. The workload is down from the
// eviction until the copy is Ready. A failure before the source is gone for good recreates
// it on its node from the manifest captured in step 1.
import type { V1Pod } from '@kubernetes/client-node';
import { describePod, targetPodState } from '../migration/podState';
import { claimSourcePod } from '../actions/claim';
import { evictOnce } from '../actions/evict';
import { neverPreempting } from '../actions/priority';
import { ignoreNotFound, isAlreadyExists, isNamespaceTerminating, isRefusal } from '../errors';
import { paths } from '../kube/client';
import type { StepContext, StepOutcome, UndoContext, UndoResult } from '../migration/context';
import type { Mode } from './mode';
import {
  awaitCopy,
  cancellableUntilStep4Eviction,
  createCopy,
  findCopy,
  removeMade,
  retireByEviction,
  undoWhileSourceRuns,
} from './shared';

/** How long a refused recreation of the source pod is retried. */
const RESTORE_RETRY_MS = 30_000;
/** How long a recreated source may take to run again before the rollback says it does not. */
const RESTORE_WAIT_MS = 60_000;

export const deleteFirst: Mode = {
  async place(ctx) {
    const made = await findCopy(ctx);
    if (!made) {
      const wait = await sourceGone(ctx);
      if (wait) return wait;
    }
    return awaitCopy(ctx, made ?? (await createCopy(ctx)));
  },
  retire: (ctx) => retireByEviction(ctx, true),
  undo,
  cancellable: cancellableUntilStep4Eviction,
};

/**
 * Evicts the source and waits until it is gone (its ReadWriteOnce claims are then free to
 * attach on the target node). Returns what to wait for, or undefined once the source is gone.
 */
async function sourceGone(ctx: StepContext): Promise<StepOutcome | undefined> {
  const { migration, status, client } = ctx;
  const { namespace } = migration.metadata;
  const source = await ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, status.sourcePod!.name)));
  if (!source || source.metadata?.uid !== status.sourcePod!.uid) return undefined;
  if (!source.metadata?.deletionTimestamp) {
    await claimSourcePod(client, migration, source);
    const r = await evictOnce(ctx, namespace, 'CreateTargetPod');
    if (!('kind' in r)) return r;
  }
  return {
    done: false,
    requeueAfterMs: 2_000,
    message: `DeleteBeforeCreate: waiting for source pod ${source.metadata!.name} to terminate before creating its copy`,
  };
}

/**
 * Before the source was evicted for good (step 4 not done), the copy is removed and, once
 * it and the source are gone, the source is recreated on its node from the manifest
 * captured in step 1 (not in a namespace being deleted; a refusal is reported, not retried
 * forever).
 */
async function undo(ctx: UndoContext): Promise<UndoResult> {
  const { migration, status, client, log, ref, source, sourceRuns, pods } = ctx;
  const { namespace, name } = migration.metadata;
  const sourceMoved = status.steps?.find((s) => s.name === 'DeleteSourcePod')?.state === 'Succeeded';
  const restore = status.sourcePodManifest && !sourceMoved && !sourceRuns ? status.sourcePodManifest : undefined;
  if (!restore) {
    return undoWhileSourceRuns(
      ctx,
      (state) => `source pod ${ref.name} ${state}, so it is all that is left of the workload; delete it when it is no longer needed`,
    );
  }
  const removed = await removeMade(ctx);
  if (source || pods.length > 0) return { done: false };
  try {
    await client.create(paths.pods(namespace), migration.spec.allowPreemption ? restore : await neverPreempting(client, restore));
  } catch (e) {
    if (isNamespaceTerminating(e)) {
      return {
        done: true,
        outcome: {
          ok: false,
          reason: 'NamespaceTerminating',
          message: `${removed}source pod ${ref.name} not recreated: namespace ${namespace} is being deleted`,
        },
      };
    }
    if (isRefusal(e)) {
      // Refused (quota, Pod Security, a webhook): asked again for a while, since a quota
      // may free up, then reported and let go, so the record can be deleted.
      const message =
        `${removed}could not recreate source pod ${ref.name}: ${(e as Error).message}; its manifest is kept in ` +
        `status.sourcePodManifest (kubectl get podmigration ${name} -n ${namespace} -o jsonpath='{.status.sourcePodManifest}' | kubectl create -f -)`;
      log.error({ pod: ref.name, err: (e as Error).message }, 'could not recreate the source pod');
      ctx.record('Warning', 'SourcePodNotRestored', message);
      const failedForMs = Date.parse(ctx.now) - Date.parse(status.completionTime ?? ctx.now);
      if (failedForMs < RESTORE_RETRY_MS) return { done: false, retryAfterMs: RESTORE_RETRY_MS / 6 };
      return { done: true, outcome: { ok: false, reason: 'SourcePodNotRestored', message } };
    }
    if (!isAlreadyExists(e)) throw e;
  }
  return restored(ctx, removed);
}

/**
 * A recreated source is called restored only once it runs again on its node. One the
 * scheduler cannot place there (its devices were taken meanwhile, say) is reported with the
 * scheduler's words, and left waiting: it is the workload.
 */
async function restored(ctx: UndoContext, removed: string): Promise<UndoResult> {
  const { migration, status, client, log, ref } = ctx;
  const pod = await ignoreNotFound(client.get<V1Pod>(paths.pod(migration.metadata.namespace, ref.name)));
  if (!pod) return { done: false };
  const node = ref.node;
  if (pod.status?.phase === 'Running' && pod.spec?.nodeName === node) {
    log.info({ pod: ref.name, node }, 'recreated the source pod');
    ctx.record('Normal', 'SourcePodRestored', `recreated pod ${ref.name} on ${node} from the spec captured in step 1; it runs`);
    return {
      done: true,
      outcome: { ok: true, reason: 'SourcePodRestored', message: `${removed}recreated source pod ${ref.name} on ${node}, where it runs` },
    };
  }
  const state = targetPodState(pod, Date.parse(ctx.now));
  const waitedMs = Date.parse(ctx.now) - Date.parse(status.completionTime ?? ctx.now);
  if (state.kind === 'starting' && waitedMs < RESTORE_WAIT_MS) return { done: false, retryAfterMs: 1_000 };
  const why = state.kind === 'failed' || state.kind === 'starting' ? state.message : describePod(pod);
  const message = `${removed}recreated source pod ${ref.name} for ${node}, but it does not run there: ${why}`;
  log.warn({ pod: ref.name, node }, message);
  ctx.record('Warning', 'SourcePodNotRestored', message);
  return { done: true, outcome: { ok: false, reason: 'SourcePodNotRestored', message } };
}
