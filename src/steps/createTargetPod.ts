// Step 3: create the optimized copy of the pod on the target node, then wait (by watch,
// with a deadline kept in status) until it is Ready. A pod that fails or cannot start
// fails the migration at once.
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_MIGRATION_UID, withDefaults } from '../api/types';
import { remainingMs, stepStartTime } from '../controller/status';
import { ApiError, MigrationFailure, ignoreNotFound, isAlreadyExists } from '../errors';
import { paths } from '../kube/client';
import { buildTargetPod, targetPodName } from '../migration/optimizedPod';
import { targetPodState } from '../migration/podState';
import type { Step, StepContext, StepOutcome } from './context';
import { claimSourcePod } from './claim';
import { evictOnce } from './evict';
import { steerReplacement } from './steer';

export const createTargetPod: Step = async (ctx) => {
  const { migration, status, now } = ctx;
  if (status.mode === 'Steer') return steerReplacement(ctx);
  const spec = withDefaults(migration.spec);
  const made = await findTargetPod(ctx);
  if (!made && spec.deleteFirst) {
    const wait = await sourceGone(ctx);
    if (wait) return wait;
  }
  const pod = made ?? (await createPod(ctx));
  status.targetPod = { name: pod.metadata!.name!, uid: pod.metadata!.uid!, node: spec.targetNode };

  const state = targetPodState(pod, Date.parse(now));
  if (state.kind === 'failed') throw new MigrationFailure(state.reason, state.message);
  if (state.kind === 'ready') return { done: true, message: `pod ${pod.metadata!.name} is Ready on ${spec.targetNode}` };

  const left = remainingMs(stepStartTime(status, 'CreateTargetPod', now), spec.readyTimeoutSeconds, now);
  if (left <= 0) {
    throw new MigrationFailure('TargetPodNotReady', `pod ${pod.metadata!.name} did not become Ready within ${spec.readyTimeoutSeconds}s`);
  }
  const deadline = new Date(Date.parse(now) + left).toISOString();
  return { done: false, requeueAfterMs: Math.min(left, state.retryAfterMs ?? left), message: `${state.message}; ready deadline ${deadline}` };
};

/**
 * The pod already made for this migration, if any. From the cache; the API server is asked
 * only when the cache has no pod that status says was made (it may lag behind the create).
 * One made but not yet on record is found by the create's AlreadyExists.
 */
async function findTargetPod({ migration, status, client, targetPods }: StepContext): Promise<V1Pod | undefined> {
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

/**
 * DeleteBeforeCreate: evict the source and wait until it is gone (its ReadWriteOnce
 * claims are then free to attach on the target node). Returns what to wait for, or
 * undefined once the source is gone.
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
  return { done: false, requeueAfterMs: 2_000, message: `DeleteBeforeCreate: waiting for source pod ${source.metadata!.name} to terminate before creating its copy` };
}

/** Creates the copy: from the live source, or (DeleteBeforeCreate) from the captured manifest. */
async function createPod({ migration, status, client, fresh }: StepContext): Promise<V1Pod> {
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
  const body = buildTargetPod(source, {
    name: podName,
    targetNode: migration.spec.targetNode,
    migrationName: name,
    migrationUid: uid,
    keep: new Set((status.containers ?? []).filter((c) => c.migrated).map((c) => c.name)),
    checkpointPVC: status.checkpointPVC,
    withhold: status.surge?.withheldLabels,
  });
  try {
    return await client.create<V1Pod>(paths.pods(namespace), body);
  } catch (e) {
    if (isAlreadyExists(e)) return ours(await client.get<V1Pod>(paths.pod(namespace, podName)), uid);
    if (e instanceof ApiError && e.code === 403 && /exceeded quota/.test(e.message)) {
      throw new MigrationFailure('QuotaExceeded', `a ResourceQuota refused pod ${podName}: ${e.message}`);
    }
    if (e instanceof ApiError && (e.code === 400 || e.code === 403 || e.code === 422)) {
      throw new MigrationFailure('TargetPodRejected', `the API server refused pod ${podName}: ${e.message}`);
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
