// Steer mode's rules about owners, as pure functions: which owners recreate an evicted pod,
// whether the eviction would fail a Job, and how the owner's replacement of the source is
// told apart from every other pod it makes.
import type { V1Job, V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import type { SteerReplacement } from '../api/types';

/** Owners that recreate an evicted pod by default, as `group/Kind`. */
export const DEFAULT_STEER_OWNER_KINDS = ['apps/StatefulSet', 'batch/Job'];

/** `group/Kind` of an owner reference (`/Kind` for the core group). */
export function ownerKind(owner: { apiVersion: string; kind: string }): string {
  const slash = owner.apiVersion.lastIndexOf('/');
  return `${slash < 0 ? '' : owner.apiVersion.slice(0, slash)}/${owner.kind}`;
}

/** The label and annotation a Job's controller puts on each pod of an Indexed Job. */
export const JOB_COMPLETION_INDEX = 'batch.kubernetes.io/job-completion-index';
/** With backoffLimitPerIndex: how often the pod's index has failed so far. */
export const JOB_INDEX_FAILURE_COUNT = 'batch.kubernetes.io/job-index-failure-count';
/** A StatefulSet pod's ordinal: the part of its name after the StatefulSet's. */
const ordinalOf = (setName: string, podName: string) =>
  podName.startsWith(`${setName}-`) ? Number(podName.slice(setName.length + 1)) : NaN;

/** Exit codes of a container stopped by an eviction: SIGTERM (143), or SIGKILL after the grace period (137). */
const EVICTED_EXIT_CODES = [137, 143];

/**
 * Why evicting `pod` would fail its Job, or undefined if the Job absorbs the eviction. The
 * Eviction API marks the pod with the condition DisruptionTarget; the Job counts it as a
 * failed pod unless its pod failure policy ignores that condition, and a failure beyond its
 * backoff budget (or the index's, with backoffLimitPerIndex) fails the Job.
 */
export function evictionWouldFailJob(job: V1Job, pod: V1Pod): string | undefined {
  const name = job.metadata?.name;
  // The first rule that matches an evicted pod decides what its failure does.
  for (const rule of job.spec?.podFailurePolicy?.rules ?? []) {
    const onDisruption = (rule.onPodConditions ?? []).some((c) => c.type === 'DisruptionTarget' && (c.status ?? 'True') === 'True');
    const codes = rule.onExitCodes;
    const onExitCode =
      !!codes && EVICTED_EXIT_CODES.some((code) => (codes.operator === 'In' ? codes.values.includes(code) : !codes.values.includes(code)));
    if (!onDisruption && !onExitCode) continue;
    if (rule.action === 'Ignore') return undefined;
    if (rule.action === 'FailJob' || rule.action === 'FailIndex') {
      const what = onDisruption
        ? 'the DisruptionTarget condition an eviction sets'
        : `exit codes ${codes!.operator} [${codes!.values.join(', ')}]`;
      return `Job ${name}'s pod failure policy would ${rule.action === 'FailJob' ? 'fail the Job' : "fail the pod's index"} on ${what}`;
    }
    break; // Count: the eviction counts against the budget, as below
  }
  // Counted: the eviction, and the removal of its replacement should the move fail (a
  // replacement pinned to a node that cannot take it is evicted so that the Job makes it anew).
  const perIndex = job.spec?.backoffLimitPerIndex;
  if (perIndex !== undefined && perIndex !== null) {
    const failed = Number(pod.metadata?.annotations?.[JOB_INDEX_FAILURE_COUNT] ?? 0);
    if (failed + 2 > perIndex) {
      const index = pod.metadata?.annotations?.[JOB_COMPLETION_INDEX];
      return `evicting it (and its replacement, should the move fail) would be failures ${failed + 1} and ${failed + 2} of index ${index} of Job ${name}, whose backoffLimitPerIndex is ${perIndex}`;
    }
    return undefined;
  }
  const limit = job.spec?.backoffLimit ?? 6;
  const failed = job.status?.failed ?? 0;
  if (failed + 2 > limit) {
    return (
      `evicting it (and its replacement, should the move fail) would be failures ${failed + 1} and ${failed + 2} of Job ${name}, whose backoffLimit is ${limit}; ` +
      `a pod failure policy that ignores the DisruptionTarget condition would let it move`
    );
  }
  return undefined;
}

/** Why a Job would not recreate `pod` once it is evicted, or undefined. */
export function jobWouldNotRecreate(job: V1Job): string | undefined {
  const name = job.metadata?.name;
  const ended = (job.status?.conditions ?? []).find(
    (c) => ['Complete', 'Failed', 'FailureTarget', 'SuccessCriteriaMet'].includes(c.type) && c.status === 'True',
  );
  if (ended) return `Job ${name} has ended (${ended.type}): it would not recreate the pod`;
  if (job.spec?.suspend) return `Job ${name} is suspended: it would not recreate the pod`;
  return undefined;
}

/** Why a StatefulSet would not recreate `pod`, or undefined. */
export function statefulSetWouldNotRecreate(set: V1StatefulSet, pod: V1Pod): string | undefined {
  const ordinal = ordinalOf(set.metadata!.name!, pod.metadata!.name!);
  const start = set.spec?.ordinals?.start ?? 0;
  const replicas = set.spec?.replicas ?? 1;
  if (!(ordinal >= start && ordinal < start + replicas)) {
    return `StatefulSet ${set.metadata!.name} has ${replicas} replicas from ordinal ${start}: it would not recreate pod ${pod.metadata!.name}`;
  }
  return undefined;
}

/**
 * How the owner's replacement of `pod` is recognised for certain, or why it cannot be: a
 * StatefulSet's (or a custom owner's) by its name, an Indexed Job's by its completion
 * index, a Job that runs one pod at a time by being its next pod.
 */
export function replacementOf(
  owner: { kind: string; apiVersion: string },
  pod: V1Pod,
  job?: V1Job,
): SteerReplacement | { unknown: string } {
  if (ownerKind(owner) === 'batch/Job') {
    const index = pod.metadata?.annotations?.[JOB_COMPLETION_INDEX] ?? pod.metadata?.labels?.[JOB_COMPLETION_INDEX];
    if (job?.spec?.completionMode === 'Indexed' && index !== undefined) return { completionIndex: index };
    const parallelism = job?.spec?.parallelism ?? 1;
    if (parallelism <= 1) return { onlyNewPod: true };
    return {
      unknown: `Job ${job?.metadata?.name} runs up to ${parallelism} pods at once and is not Indexed: its replacement for this pod could not be told from its other pods`,
    };
  }
  return { name: pod.metadata!.name! };
}

/** Whether `pod`, being created, is the replacement `match` describes. */
export function isReplacement(pod: V1Pod, match: SteerReplacement): boolean {
  if ('name' in match) return pod.metadata?.name === match.name;
  if ('completionIndex' in match) {
    return (pod.metadata?.annotations?.[JOB_COMPLETION_INDEX] ?? pod.metadata?.labels?.[JOB_COMPLETION_INDEX]) === match.completionIndex;
  }
  return match.onlyNewPod === true;
}

/** A few words on how the replacement is recognised, for messages. */
export function describeReplacement(match: SteerReplacement): string {
  if ('name' in match) return `the pod named ${match.name}`;
  if ('completionIndex' in match) return `the pod of completion index ${match.completionIndex}`;
  return 'its next pod';
}
