// One migration at a time per pod. Step 1 claims the source pod by writing an annotation
// naming the migration, with the resourceVersion it read as a precondition: of two
// migrations racing for one pod, exactly one write succeeds, whatever the informer caches
// say. Steps 3 and 4 check the claim again before they create the copy or evict the source.
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_CLAIM, ANNOTATION_DELETION_COST, type PodMigration, TERMINAL_PHASES } from '../api/types';
import { MigrationFailure, ignoreNotFound, isConflict, isNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import { LOWEST_COST } from './handOver';

const claimValue = (m: PodMigration) => `${m.metadata.name}/${m.metadata.uid}`;

/** Whether this migration's claim is on the pod. */
export const claimedBy = (pod: V1Pod | undefined, m: PodMigration): boolean => pod?.metadata?.annotations?.[ANNOTATION_CLAIM] === claimValue(m);

/**
 * Makes `pod` this migration's (returns it as the API server now holds it), or throws MigrationInProgress naming the unfinished
 * migration that holds it. A claim left by a migration that has ended or is gone is taken
 * over. A conflict (the pod changed since it was read, perhaps claimed) is thrown as it is:
 * the reconcile is retried and reads the pod again.
 */
export async function claimSourcePod(client: KubeClient, migration: PodMigration, pod: V1Pod): Promise<V1Pod> {
  if (claimedBy(pod, migration)) return pod;
  const current = pod.metadata?.annotations?.[ANNOTATION_CLAIM];
  const { namespace } = migration.metadata;
  if (current) {
    const holder = await unfinishedHolder(client, namespace, current);
    if (holder) {
      throw new MigrationFailure('MigrationInProgress', `pod ${pod.metadata!.name} is already being migrated by PodMigration ${holder}`);
    }
  }
  return client.mergePatch<V1Pod>(paths.pod(namespace, pod.metadata!.name!), {
    metadata: { resourceVersion: pod.metadata!.resourceVersion, annotations: { [ANNOTATION_CLAIM]: claimValue(migration) } },
  });
}

/**
 * Removes this migration's claim from the pod, if it still holds it (after a rollback),
 * and the lowest deletion cost a Surge hand-over gave it.
 */
export async function releaseClaim(client: KubeClient, migration: PodMigration, pod: V1Pod): Promise<void> {
  if (!claimedBy(pod, migration)) return;
  const annotations = pod.metadata?.annotations ?? {};
  const cost = migration.status?.mode === 'Surge' && annotations[ANNOTATION_DELETION_COST] === LOWEST_COST ? { [ANNOTATION_DELETION_COST]: null } : {};
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
async function unfinishedHolder(client: KubeClient, namespace: string, claim: string): Promise<string | undefined> {
  const [name, uid] = claim.split('/');
  if (!name || !uid) return undefined;
  const holder = await ignoreNotFound(client.get<PodMigration>(paths.migration(namespace, name)));
  if (!holder || holder.metadata.uid !== uid) return undefined;
  return TERMINAL_PHASES.includes(holder.status?.phase ?? 'Pending') ? undefined : name;
}
