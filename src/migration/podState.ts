// Reading pod status: which containers run, and whether a new pod is Ready, still
// starting, or will never start. Pure functions.
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { ContainerRecord } from '../api/types';

/** Every app container of the pod with its state, restarts and whether it is migrated. */
export function captureContainers(pod: V1Pod): ContainerRecord[] {
  const statuses = new Map((pod.status?.containerStatuses ?? []).map((s) => [s.name, s]));
  return (pod.spec?.containers ?? []).map((c) => {
    const s = statuses.get(c.name);
    const state = containerState(s);
    return {
      name: c.name,
      state,
      ...(reasonOf(s) ? { reason: reasonOf(s) } : {}),
      restartCount: s?.restartCount ?? 0,
      migrated: state === 'running',
    };
  });
}

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
  | { kind: 'failed'; reason: string; message: string };

/**
 * How long kube-scheduler may call a pod Unschedulable before that is taken as its
 * answer: some causes pass by themselves (a claim the provisioner has not bound yet, a
 * preemption under way), and the scheduler retries on cluster events.
 */
export const UNSCHEDULABLE_GRACE_MS = 5_000;

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
  if (unschedulable) {
    const message = `pod ${name} cannot be scheduled: ${unschedulable.message ?? ''}`.trim();
    const since = Date.parse(String(unschedulable.lastTransitionTime ?? 0));
    if (now - since >= UNSCHEDULABLE_GRACE_MS) return { kind: 'failed', reason: 'TargetPodUnschedulable', message };
    return { kind: 'starting', message: `${message} (retried by the scheduler for ${UNSCHEDULABLE_GRACE_MS / 1000}s)`, retryAfterMs: UNSCHEDULABLE_GRACE_MS - (now - since) };
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
