// One migration at a time per pod. Step 1 claims the source pod by writing an annotation
// naming the migration, with the resourceVersion it read as a precondition: of two
// migrations racing for one pod, exactly one write succeeds, whatever the informer caches
// say. Steps 3 and 4 check the claim again before they create the copy or evict the source.
import type { V1Pod } from '@kubernetes/client-node';
import {
  ANNOTATION_CLAIM,
  ANNOTATION_DELETION_COST,
  ANNOTATION_MIGRATION_UID,
  LABEL_MIGRATION,
  type PodMigration,
  TERMINAL_PHASES,
} from '../api/types';
import { MigrationFailure, ignoreNotFound, isConflict, isNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import { LOWEST_COST } from '../migration/surge';

const claimValue = (m: PodMigration) => `${m.metadata.name}/${m.metadata.uid}`;

/** Whether this migration's claim is on the pod. */
export const claimedBy = (pod: V1Pod | undefined, m: PodMigration): boolean =>
  pod?.metadata?.annotations?.[ANNOTATION_CLAIM] === claimValue(m);

/**
 * Makes `pod` this migration's (returns it as the API server now holds it), or throws
 * MigrationInProgress naming the unfinished migration that holds it: by its claim, or as
 * the pod that migration made (a copy, or a steered replacement), which is that migration's
 * until it ends. A claim left by a migration that has ended or is gone is taken over. A
 * conflict (the pod changed since it was read, perhaps claimed) is thrown as it is: the
 * reconcile is retried and reads the pod again.
 */
export async function claimSourcePod(client: KubeClient, migration: PodMigration, pod: V1Pod): Promise<V1Pod> {
  if (claimedBy(pod, migration)) return pod;
  const { namespace } = migration.metadata;
  const annotations = pod.metadata?.annotations ?? {};
  const maker = pod.metadata?.labels?.[LABEL_MIGRATION];
  const holders = [
    annotations[ANNOTATION_CLAIM],
    maker && annotations[ANNOTATION_MIGRATION_UID] ? `${maker}/${annotations[ANNOTATION_MIGRATION_UID]}` : undefined,
  ];
  for (const h of holders) {
    if (!h || h === claimValue(migration)) continue;
    const holder = await unfinishedHolder(client, namespace, h);
    if (holder) {
      const how = h === holders[0] ? 'is already being migrated by' : 'was made by, and still belongs to,';
      throw new MigrationFailure('MigrationInProgress', `pod ${pod.metadata!.name} ${how} PodMigration ${holder}, which has not ended`);
    }
  }
  return client.mergePatch<V1Pod>(paths.pod(namespace, pod.metadata!.name!), {
    metadata: { resourceVersion: pod.metadata!.resourceVersion, annotations: { [ANNOTATION_CLAIM]: claimValue(migration) } },
  });
}

/**
 * Removes this migration's claim from the pod, if it still holds it (after a rollback),
 * and the lowest deletion cost a Surge hand-over gave it (its own put back).
 */
export async function releaseClaim(client: KubeClient, migration: PodMigration, pod: V1Pod): Promise<void> {
  if (!claimedBy(pod, migration)) return;
  const annotations = pod.metadata?.annotations ?? {};
  // The cost the pod had before, or none.
  const cost =
    migration.status?.mode === 'Surge' && annotations[ANNOTATION_DELETION_COST] === LOWEST_COST
      ? { [ANNOTATION_DELETION_COST]: migration.status.surge?.deletionCost ?? null }
      : {};
  try {
    await client.mergePatch(paths.pod(migration.metadata.namespace, pod.metadata!.name!), {
      metadata: { resourceVersion: pod.metadata!.resourceVersion, annotations: { [ANNOTATION_CLAIM]: null, ...cost } },
    });
  } catch (e) {
    // Changed or gone meanwhile: a claim left behind is taken over by the next migration.
    if (!isConflict(e) && !isNotFound(e)) throw e;
  }
}

/** The name of the migration holding a claim, if it exists and has not ended. */
export async function unfinishedHolder(client: KubeClient, namespace: string, claim: string): Promise<string | undefined> {
  const [name, uid] = claim.split('/');
  if (!name || !uid) return undefined;
  const holder = await ignoreNotFound(client.get<PodMigration>(paths.migration(namespace, name)));
  if (!holder || holder.metadata.uid !== uid) return undefined;
  return TERMINAL_PHASES.includes(holder.status?.phase ?? 'Pending') ? undefined : name;
}
