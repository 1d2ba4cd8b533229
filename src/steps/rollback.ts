// Undoing a migration that failed or was cancelled, as far as that is safe, and saying what
// it left (the RolledBack condition). What is common to every mode is read here, from the
// API server, not the cache, so that a pod made a moment ago is not missed; what may be
// undone is the mode's to say.
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ANNOTATION_MIGRATION_UID, LABEL_MIGRATION, type PodMigration, type PodMigrationStatus, type SourcePodRef } from '../api/types';
import { claimedBy } from '../actions/claim';
import { ignoreNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import type { UndoContext, UndoResult } from '../migration/context';
import { modeOf } from '../modes/mode';
import { keep } from '../modes/shared';

export interface RollbackOptions {
  migration: PodMigration;
  status: PodMigrationStatus;
  client: KubeClient;
  env: UndoContext['env'];
  /** The time of this reconcile, ISO 8601. */
  now: string;
  log: Logger;
  record: UndoContext['record'];
}

export async function rollBack(o: RollbackOptions): Promise<UndoResult> {
  const { migration, status, client } = o;
  const { namespace, name, uid } = migration.metadata;
  const list = await client.get<{ items: V1Pod[] }>(paths.pods(namespace), { labelSelector: `${LABEL_MIGRATION}=${name}` });
  const pods = list.items.filter((p) => p.metadata?.annotations?.[ANNOTATION_MIGRATION_UID] === uid);
  // Not on record (an operator was killed between its copy and the status write that
  // follows): the claim names the source.
  const ref = status.sourcePod ?? (await claimedSource(client, migration));
  if (!ref) {
    if (pods.length === 0) return { done: true }; // ended in step 1: nothing was made or claimed
    return keep(
      { ...o, pods },
      `pod ${migration.spec.podName} no longer carries this migration's claim, so the copy may be all that is left of the workload; delete it when it is no longer needed`,
    );
  }
  const found = await ignoreNotFound(client.get<V1Pod>(paths.pod(namespace, ref.name)));
  const source = found?.metadata?.uid === ref.uid ? found : undefined;
  const sourceRuns = !!source && !source.metadata?.deletionTimestamp;
  return modeOf(status, migration.spec).undo({ ...o, pods, ref, found, source, sourceRuns });
}

/** The source pod as this migration's claim names it, if the claim is on spec.podName. */
async function claimedSource(client: KubeClient, pm: PodMigration): Promise<SourcePodRef | undefined> {
  const pod = await ignoreNotFound(client.get<V1Pod>(paths.pod(pm.metadata.namespace, pm.spec.podName)));
  if (!pod || !claimedBy(pod, pm)) return undefined;
  return { name: pod.metadata!.name!, uid: pod.metadata!.uid!, node: pod.spec?.nodeName ?? '' };
}
