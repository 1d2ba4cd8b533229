// Step 5: after the stabilisation delay, read the new pod back from the API server and
// record its resource figures and what the migration saved. The migration completes only
// while that pod is Ready: one that failed or was deleted after the source was evicted is
// reported as TargetPodLost (and kept: it is all that is left of the workload).
import { withDefaults } from '../api/types';
import { readUsage } from '../actions/usage';
import { MigrationFailure } from '../errors';
import type { Step } from '../migration/context';
import { targetPodState } from '../migration/podState';
import { devicesFreed, fromFigures, podFigures, podRequests, savings } from '../migration/resources';
import { claimsOf, devicesAllocated } from '../actions/devices';
import { remainingMs, stepStartTime } from '../migration/status';
import { watchedPod } from '../modes/shared';

export const collectMetrics: Step = async (ctx) => {
  const { migration, status, client, now } = ctx;
  const { metricsDelaySeconds, readyTimeoutSeconds } = withDefaults(migration.spec);
  const left = remainingMs(stepStartTime(status, 'CollectMetrics', now), metricsDelaySeconds, now);
  if (left > 0) {
    return { done: false, requeueAfterMs: left, message: `stabilising for ${metricsDelaySeconds}s before recording resource figures` };
  }
  const { namespace } = migration.metadata;
  const name = status.targetPod!.name;
  // As read just now by step 4, or as the watch sees it.
  const pod = ctx.fresh.target ?? (await watchedPod(ctx));
  if (!pod || pod.metadata?.uid !== status.targetPod!.uid) {
    throw new MigrationFailure('TargetPodLost', `pod ${name} disappeared after the source pod was evicted`);
  }
  // Completed means the workload runs on the target node now: the copy must be Ready.
  const state = targetPodState(pod);
  if (state.kind === 'failed') throw new MigrationFailure('TargetPodLost', `${state.message}, after the source pod was evicted`);
  if (state.kind === 'starting') {
    const notReadyFor = -remainingMs(stepStartTime(status, 'CollectMetrics', now), metricsDelaySeconds, now);
    if (notReadyFor >= readyTimeoutSeconds * 1000) {
      throw new MigrationFailure(
        'TargetPodLost',
        `pod ${name} has not been Ready for ${readyTimeoutSeconds}s since the source pod was evicted`,
      );
    }
    return {
      done: false,
      requeueAfterMs: 5_000,
      reason: 'TargetPodNotReady',
      message: `pod ${name} is not Ready since the source pod was evicted; waiting up to spec.readyTimeoutSeconds (${readyTimeoutSeconds}s) for it to recover`,
    };
  }

  const optimized = podRequests(pod.spec!);
  const resources = (status.resources ??= {});
  const devices = pod.spec?.resourceClaims?.length ? devicesAllocated((await claimsOf(client, pod)).values()) : 0;
  resources.optimized = podFigures(pod.spec!, devices);
  resources.savings = {
    ...savings(fromFigures(resources.original!), optimized),
    ...devicesFreed(resources.original!, resources.optimized),
  };
  const usage = await readUsage(client, namespace, name);
  resources.usage = usage.available
    ? { ...resources.usage, available: resources.usage?.available ?? true, after: usage.figures }
    : { ...resources.usage, available: false, message: usage.message };
  const s = resources.savings;
  const freed = s.devices ? `; freed ${s.devices}` : '';
  return {
    done: true,
    message: `migration complete: pod ${name} on ${status.targetPod!.node}; requests saved: cpu ${s.cpu}, memory ${s.memory}${freed}`,
  };
};
