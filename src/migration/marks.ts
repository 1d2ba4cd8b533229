// The marks that make a pod a migration's own: its label (the operator watches pods by it)
// and annotations (which migration, by UID; the pod it was made from; the first pod of its
// line). One function for the copies the operator makes and the replacements it steers.
import { ANNOTATION_MIGRATED_FROM, ANNOTATION_MIGRATION_UID, ANNOTATION_ORIGIN, LABEL_MIGRATION } from '../api/types';

export interface Marks {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/**
 * The marks of migration `m` on the pod that replaces `source`. `origin` is the first pod of
 * the source's line (its own origin annotation, if an earlier migration made it), else the
 * source itself.
 */
export function migrationMarks(m: { name: string; uid: string }, source: { name: string; origin?: string }): Marks {
  return {
    labels: { [LABEL_MIGRATION]: m.name },
    annotations: {
      [ANNOTATION_MIGRATION_UID]: m.uid,
      [ANNOTATION_MIGRATED_FROM]: source.name,
      [ANNOTATION_ORIGIN]: source.origin ?? source.name,
    },
  };
}

/** Whether `pod` carries the marks of the migration with this UID (and name). */
export function markedBy(
  pod: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> } },
  m: { name: string; uid: string },
): boolean {
  return pod.metadata?.labels?.[LABEL_MIGRATION] === m.name && pod.metadata?.annotations?.[ANNOTATION_MIGRATION_UID] === m.uid;
}
