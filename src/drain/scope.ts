// Which of a node's pods a NodeDrain takes, and how its progress reads. Pure functions.
import type { V1Pod } from '@kubernetes/client-node';
import type { DrainItem, DrainPodCounts } from '../api/types';

/** Pods that have finished hold nothing: a drain has nothing to do with them. */
export const finished = (pod: V1Pod) => pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';

/** The counts the status reports, derived from the items: each pod counted once. */
export function countItems(items: readonly DrainItem[]): DrainPodCounts {
  const counts: DrainPodCounts = { total: items.length, migrated: 0, evicted: 0, pending: 0, failed: 0, skipped: 0 };
  for (const i of items) {
    if (i.result === 'Migrated') counts.migrated++;
    else if (i.result === 'Evicted') counts.evicted++;
    else if (i.result === 'Failed') counts.failed++;
    else if (i.result === 'Skipped') counts.skipped++;
    else counts.pending++;
  }
  return counts;
}

/** The PodMigration a NodeDrain starts for a pod: one per pod, found again by its name. */
export const drainMigrationName = (podUid: string) => `drain-${podUid}`;
