// Which of a node's pods a NodeDrain takes, and how its progress reads. Pure functions.
import type { V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_MIRROR, type DrainItem, type DrainPodCounts } from '../api/types';
import { controllingOwner } from '../migration/preflight';

/** Whether labels match a label selector (an omitted selector matches everything, as Kubernetes reads it). */
export function selectorMatches(selector: V1LabelSelector | undefined, labels: Readonly<Record<string, string>> = {}): boolean {
  if (!selector) return true;
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return (
    byLabels &&
    (selector.matchExpressions ?? []).every((e) => {
      const has = e.key in labels;
      const values = e.values ?? [];
      switch (e.operator) {
        case 'In':
          return has && values.includes(labels[e.key]);
        case 'NotIn':
          return !has || !values.includes(labels[e.key]);
        case 'Exists':
          return has;
        case 'DoesNotExist':
          return !has;
        default:
          return false;
      }
    })
  );
}

/** Why a pod stays on its node whatever the drain does (kubectl drain --ignore-daemonsets leaves them too); undefined otherwise. */
export function nodeBound(pod: V1Pod): string | undefined {
  if (pod.metadata?.annotations?.[ANNOTATION_MIRROR] !== undefined) return "the mirror of a static pod: it belongs to the node's kubelet";
  const owner = controllingOwner(pod);
  if (owner?.kind === 'DaemonSet') return `DaemonSet ${owner.name}'s pod: it belongs to the node`;
  return undefined;
}

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
