// Step 1: check the pod and the target node, then record the containers' states and the
// pod's resource figures. Nothing is created or changed; a refusal ends the migration
// in Failed with a reason.
import type { V1Node, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import {
  ANNOTATION_MIGRATED_FROM,
  ANNOTATION_ORIGIN,
  type ContainerRecord,
  LABEL_MIGRATION,
  type PodMigration,
  withDefaults,
} from '../api/types';
import { MigrationFailure, ignoreNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import { allows, destinationOf, restorablePod } from '../migration/optimizedPod';
import { captureContainers, droppedCrashed } from '../migration/podState';
import { lacksRoom, nodeExcludes } from '../migration/placement';
import { claimNames, nodeIsReady, singleNodeClaims } from '../migration/preflight';
import { allRequests, parseQuantity, podFigures } from '../migration/resources';
import { claimSourcePod } from '../actions/claim';
import { type ResourceClaim, claimPinned, claimsOf, classAbsentOn, devicesAllocated, templateDeviceClasses } from '../actions/devices';
import { preemptionUnavoidable } from '../actions/priority';
import { readUsage } from '../actions/usage';
import type { Step, StepContext, StepOutcome } from '../migration/context';
import { chooseMode } from '../modes/chooseMode';

export const captureState: Step = async ({ migration, status, client, env, hold, fresh, record }) => {
  const { namespace } = migration.metadata;
  const { podName } = migration.spec;

  // spec.podName, or the pod an earlier migration made from it (a re-applied record).
  let pod = await ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, podName)));
  const named = !!pod;
  if (!pod) {
    pod = await laterIncarnation(client, namespace, podName);
    if (!pod) throw new MigrationFailure('PodNotFound', `pod ${namespace}/${podName} does not exist`);
    const node = pod.spec?.nodeName;
    if (node && allows(destinationOf(migration.spec), node) && pod.status?.phase === 'Running' && !pod.metadata?.deletionTimestamp) {
      status.targetNode = node;
      return {
        done: true,
        finished: { reason: 'AlreadyOnTarget' },
        message: `pod ${podName} was moved by an earlier migration: pod ${pod.metadata!.name}, made from it, already runs on ${node}; nothing was touched`,
      };
    }
  }
  const starting = podStarting(migration, pod, named);
  if (starting) return starting;
  checkSourcePod(migration, pod, named);
  const { deleteFirst, dropCrashedContainers, allowPreemption } = withDefaults(migration.spec);
  const mode = await chooseMode(client, migration, pod, env);
  // Steered, the owner recreates the pod from its own template: every container comes back.
  const containers = captureContainers(pod, dropCrashedContainers).map((c) => (mode.mode === 'Steer' ? { ...c, migrated: true } : c));
  const kept = containers.filter((c) => c.migrated);
  if (kept.length === 0) {
    throw new MigrationFailure(
      'NoRunningContainers',
      `pod ${pod.metadata!.name} has no container left to migrate: every one has finished${dropCrashedContainers ? ' or crashed' : ''}`,
    );
  }
  if (!deleteFirst) await checkVolumes(client, pod);
  const unavoidable = !allowPreemption ? preemptionUnavoidable(pod.spec!) : undefined;
  if (unavoidable) throw new MigrationFailure('TargetPodRejected', unavoidable);
  const sourceGoesFirst = deleteFirst || mode.mode === 'Steer';
  const candidates = await targetNodes(client, migration);
  // Where the pod is down from its eviction until it runs on the target, a target the
  // scheduler would certainly refuse is refused now, before anything is touched; left to
  // the scheduler, some node must qualify. (The reason a refusal gives is the contract's:
  // TargetLacksDevice for DeleteBeforeCreate.)
  const onNode = podsByNode(client, candidates);
  const claims = await someNode(candidates, async (node) => {
    if (sourceGoesFirst) {
      await checkDevices(client, pod, node, kept, deleteFirst ? 'TargetLacksDevice' : 'TargetPodUnschedulable');
      checkPlacement(pod, node, await onNode(node));
    }
    return checkClaims(client, pod, node, kept, sourceGoesFirst);
  });
  // Last, so that a refusal leaves the pod as it was (and the record without a finalizer).
  await hold();
  fresh.source = await claimSourcePod(client, migration, pod);

  status.sourcePod = { name: pod.metadata!.name!, uid: pod.metadata!.uid!, node: pod.spec!.nodeName! };
  if (migration.spec.targetNode) status.targetNode = migration.spec.targetNode;
  status.mode = mode.mode;
  if (mode.surge) status.surge = mode.surge;
  if (mode.steer) status.steer = mode.steer;
  status.containers = containers;
  // Deleting first, the source is gone when the copy is built, and may need recreating.
  if (deleteFirst) status.sourcePodManifest = restorablePod(pod);
  const usage = await readUsage(client, namespace, pod.metadata!.name!);
  status.resources = {
    original: podFigures(pod.spec!, devicesAllocated(claims.values())),
    usage: usage.available ? { available: true, before: usage.figures } : { available: false, message: usage.message },
  };
  for (const c of containers.filter(droppedCrashed)) {
    const how = [c.reason, c.exitCode !== undefined ? `exit code ${c.exitCode}` : undefined].filter(Boolean).join(', ');
    record(
      'Warning',
      'CrashedContainerDropped',
      `container ${c.name} crashed (${how}) and is left behind, as spec.dropCrashedContainers asks`,
    );
  }
  const dropped = containers.filter((c) => !c.migrated).map((c) => `${c.name} (${c.reason ?? c.state})`);
  return {
    done: true,
    message:
      `captured ${containers.length} containers: migrating ${kept.map((c) => c.name).join(', ')}` +
      (dropped.length ? `; dropping ${dropped.join(', ')}` : ''),
  };
};

/** Thrown by the `hold` that `refusal` gives step 1: it stops there, before anything is held. */
const WOULD_HOLD = Symbol('would hold');

/**
 * What step 1 would refuse, found before the migration has a slot: step 1 run up to where
 * it would first hold anything, on a copy of the status, recording nothing. A record that
 * can only fail (no such pod, the wrong node, opted out, a DaemonSet's pod...) then fails in
 * seconds, not after waiting its turn behind a long queue. Undefined when step 1 would go on
 * (or wait).
 */
export async function refusal(ctx: StepContext): Promise<MigrationFailure | undefined> {
  try {
    await captureState({
      ...ctx,
      status: structuredClone(ctx.status),
      fresh: {},
      record: () => undefined,
      persist: async () => undefined,
      hold: async () => {
        throw WOULD_HOLD;
      },
    });
  } catch (e) {
    if (e instanceof MigrationFailure) return e;
    if (e !== WOULD_HOLD) throw e;
  }
  return undefined;
}

/**
 * The pod that earlier migrations made from `name`: the newest live copy whose line starts
 * there (annotation origin) or that was made from it directly (migrated-from). Each
 * migration's copy carries the migration label, so only those are listed.
 */
async function laterIncarnation(client: KubeClient, namespace: string, name: string): Promise<V1Pod | undefined> {
  const copies = (await client.get<{ items: V1Pod[] }>(paths.pods(namespace), { labelSelector: LABEL_MIGRATION })).items.filter((p) => {
    const a = p.metadata?.annotations ?? {};
    return (
      !p.metadata?.deletionTimestamp && p.metadata?.name !== name && (a[ANNOTATION_ORIGIN] === name || a[ANNOTATION_MIGRATED_FROM] === name)
    );
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
 * What is cheap and certain about the target node: it exists, is Ready and is not cordoned;
 * left to the scheduler, that such a node exists. Everything else (taints, room, the pod's
 * own affinities, volumes, devices) is for kube-scheduler to decide when it places the
 * copy; its refusal ends the migration in step 3 as TargetPodUnschedulable, with its own
 * message.
 */
const NODE_MAX_AGE_MS = 1_000;

async function targetNodes(client: KubeClient, migration: PodMigration): Promise<V1Node[]> {
  const { targetNode, sourceNode } = migration.spec;
  // Shared by the migrations that start within the same second: a cordon a moment old is
  // still caught, by the scheduler, which then cannot place the copy.
  if (!targetNode) {
    const where = destinationOf(migration.spec);
    const nodes = (await client.getRecent<{ items: V1Node[] }>(paths.nodes(), NODE_MAX_AGE_MS)).items.filter(
      (n) => allows(where, n.metadata!.name!) && nodeIsReady(n) && !n.spec?.unschedulable,
    );
    if (!nodes.length) {
      throw new MigrationFailure(
        'TargetPodUnschedulable',
        `spec.targetNode is unset and no node ${'avoid' in where && where.avoid ? `other than ${sourceNode} ` : ''}is Ready and uncordoned; nothing was touched`,
      );
    }
    return nodes;
  }
  const node = await ignoreNotFound(client.getRecent<V1Node>(paths.node(targetNode), NODE_MAX_AGE_MS));
  if (!node) throw new MigrationFailure('TargetNodeNotFound', `target node ${targetNode} does not exist`);
  if (!nodeIsReady(node)) throw new MigrationFailure('TargetNodeNotReady', `target node ${targetNode} is not Ready`);
  if (node.spec?.unschedulable) {
    throw new MigrationFailure('TargetNodeUnschedulable', `target node ${targetNode} is cordoned (spec.unschedulable)`);
  }
  return [node];
}

/**
 * The first answer of `check` for a node that passes it. When none does, the refusal for
 * the one node, or (the scheduler choosing) one that names each node's reason.
 */
async function someNode<T>(nodes: readonly V1Node[], check: (node: V1Node) => Promise<T>): Promise<T> {
  const refusals: MigrationFailure[] = [];
  for (const node of nodes) {
    try {
      return await check(node);
    } catch (e) {
      if (!(e instanceof MigrationFailure)) throw e;
      refusals.push(e);
    }
  }
  if (refusals.length === 1) throw refusals[0];
  const shown = refusals
    .slice(0, 3)
    .map((r) =>
      r.message
        .replace(/^kube-scheduler would not place pod \S+ on \S+: /, '')
        .replace(/(; the pod would be down from its eviction until it could, so nothing was touched|; nothing was touched)$/, ''),
    );
  const more = refusals.length > shown.length ? `; and ${refusals.length - shown.length} more nodes` : '';
  throw new MigrationFailure(refusals[0].reason, `no node qualifies: ${shown.join('; ')}${more}; nothing was touched`);
}

/** The pods bound to each node, listed once (all pods when several nodes are candidates). */
function podsByNode(client: KubeClient, nodes: readonly V1Node[]): (node: V1Node) => Promise<V1Pod[]> {
  let all: Promise<V1Pod[]> | undefined;
  return async (node) => {
    const name = node.metadata!.name!;
    if (nodes.length === 1) return (await client.get<{ items: V1Pod[] }>(paths.pods(), { fieldSelector: `spec.nodeName=${name}` })).items;
    all ??= client.get<{ items: V1Pod[] }>(paths.pods()).then((l) => l.items);
    return (await all).filter((p) => p.spec?.nodeName === name);
  };
}

/** The claims (DRA) the kept containers use; a named claim allocated on a node the target is not refuses the move. */
async function checkClaims(
  client: KubeClient,
  pod: V1Pod,
  node: V1Node,
  kept: readonly ContainerRecord[],
  sourceGoesFirst: boolean,
): Promise<Map<string, ResourceClaim>> {
  if (!pod.spec?.resourceClaims?.length) return new Map();
  const claims = await claimsOf(client, pod);
  const used = claimsUsedBy(pod, kept);
  for (const [name, claim] of claims) {
    const pinned =
      used.has(name) && pod.spec.resourceClaims.find((c) => c.name === name)?.resourceClaimName
        ? claimPinned(name, claim, pod, node, sourceGoesFirst)
        : undefined;
    if (pinned) {
      const what = sourceGoesFirst
        ? 'the copy could not use it, so evicting the pod would be downtime for nothing'
        : 'the copy could not use it while the source holds it';
      throw new MigrationFailure('ResourceClaimPinned', `${pinned}: ${what}; nothing was touched`);
    }
  }
  return claims;
}

/**
 * Where the pod is down first (DeleteBeforeCreate, Steer): a target whose allocatable has none of a
 * requested extended resource, or that no ResourceSlice offers a requested DeviceClass on.
 */
async function checkDevices(
  client: KubeClient,
  pod: V1Pod,
  node: V1Node,
  kept: readonly ContainerRecord[],
  reason: 'TargetLacksDevice' | 'TargetPodUnschedulable',
): Promise<void> {
  const name = node.metadata!.name!;
  const allocatable = node.status?.allocatable ?? {};
  const missing = [...allRequests(pod.spec!).entries()]
    .filter(([r, n]) => r.includes('/') && n > 0 && !(parseQuantity(allocatable[r] ?? '0') > 0))
    .map(([r]) => r);
  if (missing.length)
    throw new MigrationFailure(
      reason,
      `node ${name} has no ${missing.join(', ')} (status.allocatable) for pod ${pod.metadata!.name}; nothing was touched`,
    );
  for (const deviceClass of await templateDeviceClasses(client, pod, claimsUsedBy(pod, kept))) {
    if (await classAbsentOn(client, deviceClass, node)) {
      throw new MigrationFailure(
        reason,
        `no ResourceSlice offers node ${name} a device of class ${deviceClass}, which pod ${pod.metadata!.name} claims; nothing was touched`,
      );
    }
  }
}

/** The pod-level claims the kept containers (and every init container) use. */
function claimsUsedBy(pod: V1Pod, kept: readonly ContainerRecord[]): Set<string> {
  const names = new Set(kept.map((c) => c.name));
  const containers = [
    ...(pod.spec?.containers ?? []).filter((c) => names.has(c.name)),
    ...(pod.spec?.initContainers ?? []),
    { resources: pod.spec?.resources },
  ];
  return new Set(containers.flatMap((c) => (c.resources?.claims ?? []).map((r) => r.name)));
}

/** Taints, the pod's node selector and affinity, and room on the target: what kube-scheduler would certainly refuse. */
function checkPlacement(pod: V1Pod, node: V1Node, podsOnNode: readonly V1Pod[]): void {
  const why = nodeExcludes(pod, node) ?? lacksRoom(pod, node, podsOnNode);
  if (why) {
    throw new MigrationFailure(
      'TargetPodUnschedulable',
      `kube-scheduler would not place pod ${pod.metadata!.name} on ${node.metadata!.name}: ${why}; the pod would be down from its eviction until it could, so nothing was touched`,
    );
  }
}
