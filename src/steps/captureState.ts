// Step 1: check the pod and the target node, then record the containers' states and the
// pod's resource figures. Nothing is created or changed; a refusal ends the migration
// in Failed with a reason.
import type { V1Node, V1PersistentVolumeClaim, V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import { ANNOTATION_MIGRATABLE, ANNOTATION_MIGRATED_FROM, ANNOTATION_MIRROR, ANNOTATION_ORIGIN, LABEL_MIGRATION, type MigrationMode, type PodMigration, type PodMigrationStatus, withDefaults } from '../api/types';
import { MigrationFailure, ignoreNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import { restorablePod } from '../migration/optimizedPod';
import { captureContainers } from '../migration/podState';
import { labelsToWithhold } from '../migration/surge';
import { claimNames, controllingOwner, nodeIsReady, singleNodeClaims } from '../migration/preflight';
import { podRequests, toFigures } from '../migration/resources';
import { claimSourcePod } from './claim';
import type { Step, StepOutcome } from './context';
import { readUsage } from './usage';

export const captureState: Step = async ({ migration, status, client, steering, hold, fresh }) => {
  const { namespace } = migration.metadata;
  const { podName } = migration.spec;

  // spec.podName, or the pod an earlier migration made from it (a re-applied record).
  let pod = await ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, podName)));
  const named = !!pod;
  if (!pod) {
    pod = await laterIncarnation(client, namespace, podName);
    if (!pod) throw new MigrationFailure('PodNotFound', `pod ${namespace}/${podName} does not exist`);
    const { targetNode } = migration.spec;
    if (pod.spec?.nodeName === targetNode && pod.status?.phase === 'Running' && !pod.metadata?.deletionTimestamp) {
      return {
        done: true,
        finished: { reason: 'AlreadyOnTarget' },
        message: `pod ${podName} was moved by an earlier migration: pod ${pod.metadata!.name}, made from it, already runs on ${targetNode}; nothing was touched`,
      };
    }
  }
  const starting = podStarting(migration, pod, named);
  if (starting) return starting;
  checkSourcePod(migration, pod, named);
  const { deleteFirst } = withDefaults(migration.spec);
  const mode = await chooseMode(client, migration, pod, deleteFirst, steering);
  // Steered, the owner recreates the pod from its own template: every container comes back.
  const containers = captureContainers(pod).map((c) => (mode.mode === 'Steer' ? { ...c, migrated: true } : c));
  const kept = containers.filter((c) => c.migrated);
  if (kept.length === 0) {
    throw new MigrationFailure('NoRunningContainers', `pod ${pod.metadata!.name} has no running container to migrate`);
  }
  if (!deleteFirst) await checkVolumes(client, pod);
  await checkTargetNode(client, migration);
  // Last, so that a refusal leaves the pod as it was (and the record without a finalizer).
  await hold();
  fresh.source = await claimSourcePod(client, migration, pod);

  status.sourcePod = { name: pod.metadata!.name!, uid: pod.metadata!.uid!, node: pod.spec!.nodeName! };
  status.mode = mode.mode;
  if (mode.surge) status.surge = mode.surge;
  if (mode.steer) status.steer = mode.steer;
  status.containers = containers;
  // Deleting first, the source is gone when the copy is built, and may need recreating.
  if (deleteFirst) status.sourcePodManifest = restorablePod(pod);
  const usage = await readUsage(client, namespace, pod.metadata!.name!);
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

/**
 * The pod that earlier migrations made from `name`: the newest live copy whose line starts
 * there (annotation origin) or that was made from it directly (migrated-from). Each
 * migration's copy carries the migration label, so only those are listed.
 */
async function laterIncarnation(client: KubeClient, namespace: string, name: string): Promise<V1Pod | undefined> {
  const copies = (await client.get<{ items: V1Pod[] }>(paths.pods(namespace), { labelSelector: LABEL_MIGRATION })).items.filter((p) => {
    const a = p.metadata?.annotations ?? {};
    return !p.metadata?.deletionTimestamp && p.metadata?.name !== name && (a[ANNOTATION_ORIGIN] === name || a[ANNOTATION_MIGRATED_FROM] === name);
  });
  const created = (p: V1Pod) => Date.parse(String(p.metadata?.creationTimestamp ?? 0));
  return copies.sort((a, b) => created(b) - created(a))[0];
}

/**
 * A pod still starting (phase Pending: being scheduled, pulling images) is waited for,
 * within spec.timeoutSeconds, so that a pod and its migration can be committed together.
 */
function podStarting(migration: PodMigration, pod: V1Pod, named: boolean): StepOutcome | undefined {
  const { sourceNode } = migration.spec;
  const podName = pod.metadata!.name!;
  const node = pod.spec?.nodeName;
  if (pod.status?.phase !== 'Pending' || pod.metadata?.deletionTimestamp || (named && node && node !== sourceNode)) return undefined;
  return {
    done: false,
    requeueAfterMs: 2_000,
    reason: 'WaitingForPod',
    message: `waiting for pod ${podName} to be Running (phase Pending, ${node ? `on ${node}` : 'not scheduled yet'})`,
  };
}

/** `named`: the pod is spec.podName itself, so it must be on spec.sourceNode (a later incarnation may be anywhere). */
function checkSourcePod(migration: PodMigration, pod: V1Pod, named: boolean): void {
  const { sourceNode } = migration.spec;
  const podName = pod.metadata!.name!;
  if (named && pod.spec?.nodeName !== sourceNode) {
    throw new MigrationFailure(
      'PodNotOnSourceNode',
      `pod ${podName} runs on ${pod.spec?.nodeName ? `node ${pod.spec.nodeName}` : 'no node (not scheduled)'}, not on spec.sourceNode ${sourceNode}`,
    );
  }
  if (pod.metadata?.deletionTimestamp) throw new MigrationFailure('PodTerminating', `pod ${podName} is being deleted`);
  if (pod.status?.phase !== 'Running') {
    throw new MigrationFailure('PodNotRunning', `pod ${podName} is in phase ${pod.status?.phase ?? 'Unknown'}, not Running`);
  }
}

/**
 * How the pod can move, from its controlling owner: a bare pod is copied (Copy); a
 * ReplicaSet's pod is handed over to its ReplicaSet (Surge); any other owner's replacement
 * is steered to the target node by the admission webhook (Steer), when it runs; a
 * DaemonSet's or a static pod belongs to its node.
 */
async function chooseMode(
  client: KubeClient,
  migration: PodMigration,
  pod: V1Pod,
  deleteFirst: boolean,
  steering: boolean,
): Promise<{ mode: MigrationMode; surge?: PodMigrationStatus['surge']; steer?: PodMigrationStatus['steer'] }> {
  const { podName, sourceNode } = migration.spec;
  if (pod.metadata?.annotations?.[ANNOTATION_MIGRATABLE] === 'false') {
    throw new MigrationFailure('MigrationOptedOut', `pod ${podName} has the annotation ${ANNOTATION_MIGRATABLE}: "false"`);
  }
  if (pod.metadata?.annotations?.[ANNOTATION_MIRROR] !== undefined) {
    throw new MigrationFailure('NodeBoundPod', `pod ${podName} is the mirror of a static pod of ${sourceNode}'s kubelet: it belongs to that node`);
  }
  const owner = controllingOwner(pod);
  if (!owner) return { mode: 'Copy' };
  if (owner.kind === 'DaemonSet') {
    throw new MigrationFailure('NodeBoundPod', `pod ${podName} is DaemonSet ${owner.name}'s pod for ${sourceNode}: it belongs to that node`);
  }
  if (owner.kind === 'ReplicaSet' && owner.apiVersion === 'apps/v1' && !deleteFirst) {
    const rs = await ignoreNotFound(client.get<V1ReplicaSet>(paths.replicaSet(migration.metadata.namespace, owner.name)));
    const withheld = rs && rs.metadata?.uid === owner.uid ? labelsToWithhold(rs.spec!.selector, pod.metadata?.labels ?? {}) : undefined;
    if (withheld) return { mode: 'Surge', surge: { replicaSet: { name: owner.name, uid: owner.uid }, withheldLabels: withheld } };
  }
  if (steering && owner.kind !== 'ReplicaSet' && !deleteFirst) return { mode: 'Steer', steer: { owner } };
  throw new MigrationFailure(
    'OwnedByController',
    `pod ${podName} is controlled by ${owner.kind} ${owner.name}, which would recreate it when the source is deleted ` +
      `and could adopt the copy; move such pods through their owner instead (for example a node affinity or ` +
      `nodeSelector on the ${owner.kind}'s pod template, or cordon ${sourceNode} and let it reschedule)`,
  );
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

/**
 * What is cheap and certain about the target node: it exists, is Ready and is not cordoned.
 * Everything else (taints, room, the pod's own affinities, volumes, devices) is for
 * kube-scheduler to decide when it places the copy; its refusal ends the migration in
 * step 3 as TargetPodUnschedulable, with its own message.
 */
const NODE_MAX_AGE_MS = 1_000;

async function checkTargetNode(client: KubeClient, migration: PodMigration): Promise<void> {
  const { targetNode } = migration.spec;
  // Shared by the migrations that start within the same second: a cordon a moment old is
  // still caught, by the scheduler, which then cannot place the copy.
  const node = await ignoreNotFound(client.getRecent<V1Node>(paths.node(targetNode), NODE_MAX_AGE_MS));
  if (!node) throw new MigrationFailure('TargetNodeNotFound', `target node ${targetNode} does not exist`);
  if (!nodeIsReady(node)) throw new MigrationFailure('TargetNodeNotReady', `target node ${targetNode} is not Ready`);
  if (node.spec?.unschedulable) {
    throw new MigrationFailure('TargetNodeUnschedulable', `target node ${targetNode} is cordoned (spec.unschedulable)`);
  }
}
