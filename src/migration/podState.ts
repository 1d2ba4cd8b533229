// Reading pod status: which containers run, and whether a new pod is Ready, still
// starting, or will never start. Pure functions.
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { FailureReason } from '../api/reasons';
import type { ContainerRecord } from '../api/types';

/**
 * Every app container of the pod with its state, restarts, last exit code and whether it is
 * migrated. Only finished work is left behind: a container that exited 0 (or, restarted
 * under restartPolicy Always, last exited 0). One that crashed (a non-zero exit, a crash
 * loop after errors, OOMKilled) is still the workload, and is kept unless `dropCrashed`.
 */
export function captureContainers(pod: V1Pod, dropCrashed = false): ContainerRecord[] {
  const statuses = new Map((pod.status?.containerStatuses ?? []).map((s) => [s.name, s]));
  return (pod.spec?.containers ?? []).map((c) => {
    const s = statuses.get(c.name);
    const state = containerState(s);
    const exitCode = lastExitCode(s);
    const crashed = exitCode !== undefined ? exitCode !== 0 : s?.state?.waiting?.reason === 'CrashLoopBackOff';
    const finished = exitCode === 0 && state !== 'running';
    return {
      name: c.name,
      state,
      ...(reasonOf(s) ? { reason: reasonOf(s) } : {}),
      ...(exitCode !== undefined ? { exitCode } : {}),
      restartCount: s?.restartCount ?? 0,
      migrated: !finished && !(crashed && dropCrashed && state !== 'running'),
    };
  });
}

/** The exit code of a container that has ended, or that waits to be restarted after it ended. */
function lastExitCode(s: V1ContainerStatus | undefined): number | undefined {
  if (s?.state?.terminated) return s.state.terminated.exitCode;
  if (s?.state?.waiting) return s.lastState?.terminated?.exitCode;
  return undefined;
}

/** A container left behind for having crashed, not finished: dropped only when asked to. */
export const droppedCrashed = (c: ContainerRecord) => !c.migrated && c.exitCode !== 0;

function containerState(s: V1ContainerStatus | undefined): ContainerRecord['state'] {
  if (s?.state?.running) return 'running';
  if (s?.state?.terminated) return 'terminated';
  return 'waiting';
}

function reasonOf(s: V1ContainerStatus | undefined): string | undefined {
  return s?.state?.waiting?.reason ?? s?.state?.terminated?.reason ?? undefined;
}

export function isPodReady(pod: V1Pod): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Waiting reasons after which a container will not start without someone's help. */
const FATAL_WAITING_REASONS = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
  'CrashLoopBackOff',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
  'PreStartHookError',
]);

export type TargetPodState =
  | { kind: 'ready' }
  | { kind: 'starting'; message: string; retryAfterMs?: number }
  | { kind: 'failed'; reason: FailureReason; message: string };

/**
 * How long kube-scheduler may call a pod Unschedulable before that is taken as its
 * answer: the scheduler retries on cluster events, and a verdict may change within moments.
 */
export const UNSCHEDULABLE_GRACE_MS = 5_000;

/**
 * Verdicts of kube-scheduler that pass by themselves, so they are waited for (within the
 * ready deadline) and never taken as its answer: a claim not bound yet (a provisioner can
 * take tens of seconds), a volume or device still being made.
 */
const PASSING = [
  /unbound immediate PersistentVolumeClaims/i,
  /waiting for (?:the )?(?:volume|resource|claim)/i,
  /not yet (?:bound|allocated|provisioned)/i,
];

/** Classifies a freshly created pod: Ready, still starting, or never going to start. */
export function targetPodState(pod: V1Pod, now = Date.now()): TargetPodState {
  const name = pod.metadata?.name;
  if (pod.metadata?.deletionTimestamp) {
    return { kind: 'failed', reason: 'TargetPodDeleted', message: `pod ${name} is being deleted` };
  }
  const phase = pod.status?.phase;
  if (phase === 'Failed' || phase === 'Succeeded') {
    const why = pod.status?.reason ? ` (${pod.status.reason}${pod.status.message ? `: ${pod.status.message}` : ''})` : '';
    return { kind: 'failed', reason: 'TargetPodFailed', message: `pod ${name} ended in phase ${phase}${why}` };
  }
  const unschedulable = (pod.status?.conditions ?? []).find(
    (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
  );
  if (!pod.spec?.nodeName && pod.status?.nominatedNodeName) {
    // kube-scheduler is making room there (its victims are terminating): progress.
    return {
      kind: 'starting',
      message: `pod ${name} is nominated to node ${pod.status.nominatedNodeName}: kube-scheduler is preempting pods there to make room`,
    };
  }
  if (unschedulable) {
    const message = `pod ${name} cannot be scheduled: ${unschedulable.message ?? ''}`.trim();
    if (PASSING.some((p) => p.test(unschedulable.message ?? '')))
      return { kind: 'starting', message: `${message} (waiting: this passes by itself)`, retryAfterMs: 2_000 };
    const since = Date.parse(String(unschedulable.lastTransitionTime ?? 0));
    if (now - since >= UNSCHEDULABLE_GRACE_MS) return { kind: 'failed', reason: 'TargetPodUnschedulable', message };
    return {
      kind: 'starting',
      message: `${message} (retried by the scheduler for ${UNSCHEDULABLE_GRACE_MS / 1000}s)`,
      retryAfterMs: UNSCHEDULABLE_GRACE_MS - (now - since),
    };
  }
  const all = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const s of all) {
    const waiting = s.state?.waiting;
    if (waiting?.reason && FATAL_WAITING_REASONS.has(waiting.reason)) {
      return {
        kind: 'failed',
        reason: 'TargetPodStartFailed',
        message: `container ${s.name} of pod ${name} cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`,
      };
    }
  }
  if (isPodReady(pod)) return { kind: 'ready' };
  return { kind: 'starting', message: `waiting for pod ${name} to become Ready (phase ${phase ?? 'Pending'})` };
}

/** A few words on a pod's state, for messages: "Ready", or its phase and why it is not Ready. */
export function describePod(pod: V1Pod): string {
  if (pod.metadata?.deletionTimestamp) return 'being deleted';
  if (isPodReady(pod)) return 'Ready';
  const phase = pod.status?.phase ?? 'Pending';
  return pod.status?.reason ? `${phase}: ${pod.status.reason}` : `${phase}, not Ready`;
}
