// Step 1: check the pod and the target node, then record the containers' states and the
// pod's resource figures. Nothing is created or changed; a refusal ends the migration
// in Failed with a reason.
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { MigrationFailure, isNotFound } from '../errors';
import { paths } from '../kube/client';
import { captureContainers } from '../migration/podState';
import { sumRequests, toFigures } from '../migration/resources';
import type { Step } from './context';
import { readUsage } from './usage';

export const captureState: Step = async ({ migration, status, client }) => {
  const { namespace } = migration.metadata;
  const { podName, sourceNode, targetNode } = migration.spec;

  const pod = await getOrUndefined<V1Pod>(() => client.get(paths.pod(namespace, podName)));
  if (!pod) throw new MigrationFailure('PodNotFound', `pod ${namespace}/${podName} does not exist`);
  if (pod.spec?.nodeName !== sourceNode) {
    throw new MigrationFailure(
      'PodNotOnSourceNode',
      `pod ${podName} runs on ${pod.spec?.nodeName ? `node ${pod.spec.nodeName}` : 'no node (not scheduled)'}, not on spec.sourceNode ${sourceNode}`,
    );
  }
  if (pod.metadata?.deletionTimestamp) {
    throw new MigrationFailure('PodTerminating', `pod ${podName} is being deleted`);
  }
  if (pod.status?.phase !== 'Running') {
    throw new MigrationFailure('PodNotRunning', `pod ${podName} is in phase ${pod.status?.phase ?? 'Unknown'}, not Running`);
  }
  const containers = captureContainers(pod);
  const kept = containers.filter((c) => c.migrated);
  if (kept.length === 0) {
    throw new MigrationFailure('NoRunningContainers', `pod ${podName} has no running container to migrate`);
  }
  const node = await getOrUndefined<V1Node>(() => client.get(paths.node(targetNode)));
  if (!node) throw new MigrationFailure('TargetNodeNotFound', `target node ${targetNode} does not exist`);

  status.sourcePod = { name: podName, uid: pod.metadata!.uid!, node: sourceNode };
  status.containers = containers;
  const usage = await readUsage(client, namespace, podName);
  status.resources = {
    original: toFigures(sumRequests(pod.spec.containers)),
    usage: usage.available ? { available: true, before: usage.figures } : { available: false, message: usage.message },
  };
  const dropped = containers.filter((c) => !c.migrated).map((c) => `${c.name} (${c.reason ?? c.state})`);
  return {
    done: true,
    message: `captured ${containers.length} containers: migrating ${kept.map((c) => c.name).join(', ')}` +
      (dropped.length ? `; dropping ${dropped.join(', ')}` : ''),
  };
};

export async function getOrUndefined<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}
