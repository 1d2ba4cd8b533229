// Step 4: remove the source pod through the Eviction API, now that its copy is Ready, so
// PodDisruptionBudgets are respected. While a budget blocks the eviction the step waits
// (condition Reconciling, reason EvictionBlocked) and retries with backoff; if the
// migration's deadline passes meanwhile it is rolled back like any failure before step 4:
// the new pod is removed and the source keeps running. Other refusals are reported
// (Event, status message) but do not fail the migration: the workload already runs on
// the target node.
import { MigrationFailure } from '../errors';
import { isPodReady } from '../migration/podState';
import type { Step } from './context';
import { evictSource } from './evict';

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
  const r = await evictSource(client, namespace, status, 'DeleteSourcePod', now);
  switch (r.kind) {
    case 'evicted':
      return { done: true, message: `source pod ${source.name} evicted from ${source.node}` };
    case 'gone':
      return { done: true, message: `source pod ${source.name} is already gone` };
    case 'blocked':
      return {
        done: false,
        reason: 'EvictionBlocked',
        requeueAfterMs: r.retryAfterMs,
        message: `eviction of source pod ${source.name} is blocked: ${r.message}; retrying until the migration's deadline`,
      };
    case 'refused': {
      log.warn({ err: r.message }, 'could not evict the source pod');
      const message = `could not evict source pod ${source.name}: ${r.message}`;
      return { done: true, message, warning: { reason: 'SourcePodNotDeleted', message } };
    }
  }
};
