// Step 4: remove the source pod through the Eviction API, now that its copy is Ready, so
// PodDisruptionBudgets are respected. While a budget blocks the eviction the step waits
// (condition Reconciling, reason EvictionBlocked) and retries with backoff; if the
// migration's deadline passes meanwhile it is rolled back like any failure before step 4:
// the new pod is removed and the source keeps running. Other refusals are reported
// (Event, status message) but do not fail the migration: the workload already runs on
// the target node.
import { ApiError, MigrationFailure, isNotFound } from '../errors';
import { paths } from '../kube/client';
import { isPodReady } from '../migration/podState';
import { remainingMs } from '../controller/status';
import type { Step } from './context';

export const deleteSourcePod: Step = async ({ migration, status, client, targetPods, now, log }) => {
  const { namespace } = migration.metadata;
  const targetName = status.targetPod!.name;
  const target = targetPods.get(targetName, namespace);
  if (!target) throw new MigrationFailure('TargetPodLost', `pod ${targetName} disappeared before the source pod was removed`);
  if (!isPodReady(target)) {
    // Never remove the original unless its replacement is Ready right now.
    return { done: false, requeueAfterMs: 30_000, message: `waiting for pod ${targetName} to be Ready again before removing the source` };
  }
  const source = status.sourcePod!;
  try {
    await client.create(paths.eviction(namespace, source.name), {
      apiVersion: 'policy/v1',
      kind: 'Eviction',
      metadata: { name: source.name, namespace },
      deleteOptions: { preconditions: { uid: source.uid } },
    });
    return { done: true, message: `source pod ${source.name} evicted from ${source.node}` };
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    if (isNotFound(e) || e.code === 409) {
      // Gone already, or replaced by another pod of the same name, which is not ours to remove.
      return { done: true, message: `source pod ${source.name} is already gone` };
    }
    if (e.code === 429) {
      const stepStart = status.steps?.find((s) => s.name === 'DeleteSourcePod')?.startTime ?? now;
      const waited = -remainingMs(stepStart, 0, now);
      return {
        done: false,
        reason: 'EvictionBlocked',
        requeueAfterMs: Math.min(Math.max(waited / 2, 1_000), 30_000),
        message: `eviction of source pod ${source.name} is blocked: ${e.message}; retrying until the migration's deadline`,
      };
    }
    if (e.code >= 400 && e.code < 500) {
      log.warn({ err: e.message }, 'could not evict the source pod');
      const message = `could not evict source pod ${source.name}: ${e.message}`;
      return { done: true, message, warning: { reason: 'SourcePodNotDeleted', message } };
    }
    throw e;
  }
};
