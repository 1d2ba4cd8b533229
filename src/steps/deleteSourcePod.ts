// Step 4: remove the source pod, now that its copy is Ready. A failure here is reported
// (Event, status message) but does not fail the migration: the workload already runs on
// the target node.
import { ApiError, MigrationFailure, isNotFound } from '../errors';
import { paths } from '../kube/client';
import { isPodReady } from '../migration/podState';
import type { Step } from './context';

export const deleteSourcePod: Step = async ({ migration, status, client, targetPods, log }) => {
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
    await client.delete(paths.pod(namespace, source.name), {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      preconditions: { uid: source.uid },
    });
    return { done: true, message: `source pod ${source.name} deleted from ${source.node}` };
  } catch (e) {
    if (isNotFound(e) || (e instanceof ApiError && e.code === 409)) {
      // Gone already, or replaced by another pod of the same name, which is not ours to delete.
      return { done: true, message: `source pod ${source.name} is already gone` };
    }
    if (e instanceof ApiError && e.code >= 400 && e.code < 500 && e.code !== 429) {
      log.warn({ err: e.message }, 'could not delete the source pod');
      const message = `could not delete source pod ${source.name}: ${e.message}`;
      return { done: true, message, warning: { reason: 'SourcePodNotDeleted', message } };
    }
    throw e;
  }
};
