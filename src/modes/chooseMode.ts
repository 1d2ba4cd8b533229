// The one place that decides how a pod moves, from its controlling owner and the strategy
// asked for (step 1). Refusals here leave the pod untouched.
import type { V1Job, V1Pod, V1ReplicaSet, V1StatefulSet } from '@kubernetes/client-node';
import {
  ANNOTATION_DELETION_COST,
  ANNOTATION_MIGRATABLE,
  ANNOTATION_MIRROR,
  type MigrationMode,
  type PodMigration,
  type PodMigrationStatus,
  withDefaults,
} from '../api/types';
import { ApiError, MigrationFailure, ignoreNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import type { Environment } from '../migration/context';
import { evictionWouldFailJob, jobWouldNotRecreate, ownerKind, replacementOf, statefulSetWouldNotRecreate } from '../migration/owners';
import { controllingOwner } from '../migration/preflight';
import { labelsToWithhold } from '../migration/surge';

export interface ModeChoice {
  mode: MigrationMode;
  surge?: PodMigrationStatus['surge'];
  steer?: PodMigrationStatus['steer'];
}

type Owner = NonNullable<ReturnType<typeof controllingOwner>>;

/**
 * How the pod can move, from its controlling owner: a bare pod is copied (Copy); a
 * ReplicaSet's pod is handed over to its ReplicaSet (Surge); the pod of an owner trusted
 * to recreate it, which exists and which the eviction cannot fail, is evicted and its
 * replacement steered to the target node by the admission webhook (Steer), when it runs; a
 * DaemonSet's or a static pod belongs to its node.
 */
export async function chooseMode(client: KubeClient, migration: PodMigration, pod: V1Pod, env: Environment): Promise<ModeChoice> {
  const { podName, sourceNode } = migration.spec;
  const { deleteFirst } = withDefaults(migration.spec);
  if (pod.metadata?.annotations?.[ANNOTATION_MIGRATABLE] === 'false') {
    throw new MigrationFailure('MigrationOptedOut', `pod ${podName} has the annotation ${ANNOTATION_MIGRATABLE}: "false"`);
  }
  if (pod.metadata?.annotations?.[ANNOTATION_MIRROR] !== undefined) {
    throw new MigrationFailure(
      'NodeBoundPod',
      `pod ${podName} is the mirror of a static pod of ${sourceNode}'s kubelet: it belongs to that node`,
    );
  }
  const owner = controllingOwner(pod);
  if (!owner) return { mode: 'Copy' };
  if (owner.kind === 'DaemonSet') {
    throw new MigrationFailure(
      'NodeBoundPod',
      `pod ${podName} is DaemonSet ${owner.name}'s pod for ${sourceNode}: it belongs to that node`,
    );
  }
  const ownedByController = (why: string) =>
    new MigrationFailure(
      'OwnedByController',
      `pod ${podName} is controlled by ${owner.kind} ${owner.name}, which would recreate it when the source is deleted ` +
        `and could adopt a copy${why}; move such pods through their owner instead (for example a node affinity or ` +
        `nodeSelector on the ${owner.kind}'s pod template, or cordon ${sourceNode} and let it reschedule)`,
    );
  if (owner.kind === 'ReplicaSet' && owner.apiVersion === 'apps/v1') {
    if (deleteFirst) throw ownedByController(': strategy DeleteBeforeCreate is only for pods without an owner');
    const rs = await ignoreNotFound(client.get<V1ReplicaSet>(paths.replicaSet(migration.metadata.namespace, owner.name)));
    const withheld = rs && rs.metadata?.uid === owner.uid ? labelsToWithhold(rs.spec!.selector, pod.metadata?.labels ?? {}) : undefined;
    const deletionCost = pod.metadata?.annotations?.[ANNOTATION_DELETION_COST];
    if (withheld)
      return {
        mode: 'Surge',
        surge: {
          replicaSet: { name: owner.name, uid: owner.uid },
          withheldLabels: withheld,
          ...(deletionCost !== undefined ? { deletionCost } : {}),
        },
      };
    throw ownedByController(': no label of its selector can be left off a copy');
  }
  if (deleteFirst) throw ownedByController(': strategy DeleteBeforeCreate is only for pods without an owner');
  if (!env.steering)
    throw ownedByController(': its replacement can only be steered by the admission webhook, which is not served (--webhook-bind-address)');
  return steerChoice(client, migration, pod, owner, env);
}

/** Steer, if the owner will recreate the pod, the eviction cannot fail it, and its replacement can be told apart. */
async function steerChoice(client: KubeClient, migration: PodMigration, pod: V1Pod, owner: Owner, env: Environment): Promise<ModeChoice> {
  const kind = ownerKind(owner);
  const who = `${owner.kind} ${owner.name}`;
  if (!env.steerOwnerKinds.has(kind)) {
    throw new MigrationFailure(
      'OwnerWillNotRecreate',
      `pod ${pod.metadata!.name} is controlled by ${who} (${kind}), which is not known to recreate the pods it owns: evicting it could lose it. ` +
        `Owners trusted to recreate their pods: ${[...env.steerOwnerKinds].join(', ')} (--steer-owner-kinds)`,
    );
  }
  const found = await readOwner(client, migration.metadata.namespace, owner);
  if (typeof found === 'string') throw new MigrationFailure('OwnerWillNotRecreate', found);
  let job: V1Job | undefined;
  if (kind === 'apps/StatefulSet') {
    const why = statefulSetWouldNotRecreate(found as V1StatefulSet, pod);
    if (why) throw new MigrationFailure('OwnerWillNotRecreate', why);
  }
  if (kind === 'batch/Job') {
    job = found as V1Job;
    const gone = jobWouldNotRecreate(job);
    if (gone) throw new MigrationFailure('OwnerWillNotRecreate', gone);
    const fails = evictionWouldFailJob(job, pod);
    if (fails) throw new MigrationFailure('EvictionWouldFailOwner', `pod ${pod.metadata!.name} was not evicted: ${fails}`);
  }
  const replacement = replacementOf(owner, pod, job);
  if ('unknown' in replacement) throw new MigrationFailure('ReplacementNotIdentifiable', replacement.unknown);
  return { mode: 'Steer', steer: { owner, replacement } };
}

/** The owner as the API server holds it, or why it will not recreate the pod (gone, being deleted, unreadable). */
async function readOwner(client: KubeClient, namespace: string, owner: Owner): Promise<object | string> {
  const who = `${owner.kind} ${owner.name}`;
  try {
    const path = await ownerPath(client, namespace, owner);
    if (!path) return `${who}: its API (${owner.apiVersion}) does not serve the kind ${owner.kind}, so nothing would recreate the pod`;
    const obj = await ignoreNotFound(client.get<{ metadata?: { uid?: string; deletionTimestamp?: string } }>(path));
    if (!obj || obj.metadata?.uid !== owner.uid) return `${who}, which owns the pod, no longer exists: nothing would recreate the pod`;
    if (obj.metadata?.deletionTimestamp) return `${who}, which owns the pod, is being deleted: it would not recreate the pod`;
    return obj;
  } catch (e) {
    if (e instanceof ApiError && (e.code === 403 || e.code === 401)) {
      return `the operator may not read ${who} (${e.message}), so it cannot tell that it exists and would recreate the pod; grant it get on that resource`;
    }
    throw e;
  }
}

/** The REST path of the owner: typed for the kinds the operator knows, found by discovery otherwise. */
async function ownerPath(client: KubeClient, namespace: string, owner: Owner): Promise<string | undefined> {
  const base = owner.apiVersion.includes('/') ? `/apis/${owner.apiVersion}` : `/api/${owner.apiVersion}`;
  const list = await ignoreNotFound(client.getRecent<{ resources?: { name: string; kind: string; namespaced: boolean }[] }>(base, 60_000));
  const resource = list?.resources?.find((r) => r.kind === owner.kind && !r.name.includes('/'));
  if (!resource) return undefined;
  return resource.namespaced ? `${base}/namespaces/${namespace}/${resource.name}/${owner.name}` : `${base}/${resource.name}/${owner.name}`;
}
