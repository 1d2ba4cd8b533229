// Step 1: check the pod and the target node, then record the containers' states and the
// pod's resource figures. Nothing is created or changed; a refusal ends the migration
// in Failed with a reason.
import type { V1Node, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { type PodMigration, withDefaults } from '../api/types';
import { MigrationFailure, ignoreNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import { restorablePod } from '../migration/optimizedPod';
import { captureContainers } from '../migration/podState';
import { claimNames, controllingOwner, freeOnNode, nodeIsReady, singleNodeClaims, untoleratedTaints } from '../migration/preflight';
import { formatCpu, formatMemory, podRequests, toFigures, type Totals } from '../migration/resources';
import { claimSourcePod } from './claim';
import type { Step } from './context';
import { readUsage } from './usage';

export const captureState: Step = async ({ migration, status, client }) => {
  const { namespace } = migration.metadata;
  const { podName } = migration.spec;

  const pod = await ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, podName)));
  if (!pod) throw new MigrationFailure('PodNotFound', `pod ${namespace}/${podName} does not exist`);
  checkSourcePod(migration, pod);
  const containers = captureContainers(pod);
  const kept = containers.filter((c) => c.migrated);
  if (kept.length === 0) {
    throw new MigrationFailure('NoRunningContainers', `pod ${podName} has no running container to migrate`);
  }
  const { deleteFirst } = withDefaults(migration.spec);
  if (!deleteFirst) await checkVolumes(client, pod);
  const keptNames = new Set(kept.map((c) => c.name));
  await checkTargetNode(client, migration, pod, podRequests({ ...pod.spec!, containers: pod.spec!.containers.filter((c) => keptNames.has(c.name)) }));
  // Last, so that a refusal leaves the pod as it was.
  await claimSourcePod(client, migration, pod);

  status.sourcePod = { name: podName, uid: pod.metadata!.uid!, node: migration.spec.sourceNode };
  status.containers = containers;
  // Deleting first, the source is gone when the copy is built, and may need recreating.
  if (deleteFirst) status.sourcePodManifest = restorablePod(pod);
  const usage = await readUsage(client, namespace, podName);
  status.resources = {
    original: toFigures(podRequests(pod.spec!)),
    usage: usage.available ? { available: true, before: usage.figures } : { available: false, message: usage.message },
  };
  const dropped = containers.filter((c) => !c.migrated).map((c) => `${c.name} (${c.reason ?? c.state})`);
  return {
    done: true,
    message:
      `captured ${containers.length} containers: migrating ${kept.map((c) => c.name).join(', ')}` +
      (dropped.length ? `; dropping ${dropped.join(', ')}` : ''),
  };
};

function checkSourcePod(migration: PodMigration, pod: V1Pod): void {
  const { podName, sourceNode } = migration.spec;
  if (pod.spec?.nodeName !== sourceNode) {
    throw new MigrationFailure(
      'PodNotOnSourceNode',
      `pod ${podName} runs on ${pod.spec?.nodeName ? `node ${pod.spec.nodeName}` : 'no node (not scheduled)'}, not on spec.sourceNode ${sourceNode}`,
    );
  }
  if (pod.metadata?.deletionTimestamp) throw new MigrationFailure('PodTerminating', `pod ${podName} is being deleted`);
  if (pod.status?.phase !== 'Running') {
    throw new MigrationFailure('PodNotRunning', `pod ${podName} is in phase ${pod.status?.phase ?? 'Unknown'}, not Running`);
  }
  const owner = controllingOwner(pod);
  if (owner) {
    throw new MigrationFailure(
      'OwnedByController',
      `pod ${podName} is controlled by ${owner.kind} ${owner.name}, which would recreate it when the source is deleted ` +
        `and could adopt the copy; move such pods through their owner instead (for example a node affinity or ` +
        `nodeSelector on the ${owner.kind}'s pod template, or cordon ${sourceNode} and let it reschedule)`,
    );
  }
}

async function checkVolumes(client: KubeClient, pod: V1Pod): Promise<void> {
  const ns = pod.metadata!.namespace!;
  const claims: V1PersistentVolumeClaim[] = [];
  for (const name of claimNames(pod)) {
    const claim = await ignoreNotFound(client.get<V1PersistentVolumeClaim>(paths.pvc(ns, name)));
    if (claim) claims.push(claim);
  }
  const rwo = singleNodeClaims(claims);
  if (rwo.length > 0) {
    throw new MigrationFailure(
      'ReadWriteOnceVolume',
      `pod ${pod.metadata!.name} mounts ReadWriteOnce claims (${rwo.join(', ')}) that the copy could not attach on another ` +
        `node while the source holds them; spec.strategy DeleteBeforeCreate moves them, with downtime`,
    );
  }
}

async function checkTargetNode(client: KubeClient, migration: PodMigration, pod: V1Pod, needs: Totals): Promise<void> {
  const { targetNode } = migration.spec;
  const node = await ignoreNotFound(client.get<V1Node>(paths.node(targetNode)));
  if (!node) throw new MigrationFailure('TargetNodeNotFound', `target node ${targetNode} does not exist`);
  if (!nodeIsReady(node)) throw new MigrationFailure('TargetNodeNotReady', `target node ${targetNode} is not Ready`);
  if (node.spec?.unschedulable) {
    throw new MigrationFailure('TargetNodeUnschedulable', `target node ${targetNode} is cordoned (spec.unschedulable)`);
  }
  const taints = untoleratedTaints(pod, node);
  if (taints.length > 0) {
    const list = taints.map((t) => `${t.key}${t.value ? `=${t.value}` : ''}:${t.effect}`).join(', ');
    throw new MigrationFailure('TargetNodeTaintNotTolerated', `pod ${pod.metadata!.name} does not tolerate the taints of ${targetNode}: ${list}`);
  }
  const onNode = await client.get<{ items: V1Pod[] }>(paths.pods(), { fieldSelector: `spec.nodeName=${targetNode}` });
  const free = freeOnNode(node, onNode.items);
  if (needs.cpu > free.cpu || needs.memory > free.memory) {
    throw new MigrationFailure(
      'InsufficientCapacity',
      `target node ${targetNode} has cpu ${formatCpu(Math.max(free.cpu, 0))} and memory ${formatMemory(Math.max(free.memory, 0))} ` +
        `unrequested; the migrated containers request cpu ${formatCpu(needs.cpu)} and memory ${formatMemory(needs.memory)}`,
    );
  }
}
