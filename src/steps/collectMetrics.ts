// Step 5: after the stabilisation delay, read the new pod back from the API server and
// record its resource figures and what the migration saved.
import type { V1Pod } from '@kubernetes/client-node';
import { withDefaults } from '../api/types';
import { remainingMs, stepStartTime } from '../controller/status';
import { MigrationFailure, ignoreNotFound } from '../errors';
import { paths } from '../kube/client';
import { fromFigures, savings, sumRequests, toFigures } from '../migration/resources';
import type { Step } from './context';
import { readUsage } from './usage';

export const collectMetrics: Step = async ({ migration, status, client, now }) => {
  const { metricsDelaySeconds } = withDefaults(migration.spec);
  const left = remainingMs(stepStartTime(status, 'CollectMetrics', now), metricsDelaySeconds, now);
  if (left > 0) {
    return { done: false, requeueAfterMs: left, message: `stabilising for ${metricsDelaySeconds}s before recording resource figures` };
  }
  const { namespace } = migration.metadata;
  const name = status.targetPod!.name;
  const pod = await ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, name)));
  if (!pod) throw new MigrationFailure('TargetPodLost', `pod ${name} disappeared after the migration`);

  const optimized = sumRequests(pod.spec!.containers);
  const resources = (status.resources ??= {});
  resources.optimized = toFigures(optimized);
  resources.savings = savings(fromFigures(resources.original!), optimized);
  const usage = await readUsage(client, namespace, name);
  resources.usage = usage.available
    ? { ...resources.usage, available: resources.usage?.available ?? true, after: usage.figures }
    : { ...resources.usage, available: false, message: usage.message };
  const s = resources.savings;
  return { done: true, message: `migration complete: pod ${name} on ${status.targetPod!.node}; requests saved: cpu ${s.cpu}, memory ${s.memory}` };
};
