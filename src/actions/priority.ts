// A voluntary move never preempts anything unless the user asks for it. A pod cannot simply
// be created with preemptionPolicy Never: the Priority admission plugin sets the policy from
// the pod's PriorityClass (PreemptLowerPriority unless the class says otherwise) and refuses
// a pod that asks for another. So the copy is given a PriorityClass of its own priority's
// value that never preempts (made once per value, and shared): the scheduler ranks it as
// it ranked the source, and it never evicts another pod to make room.
import type { V1Pod, V1PodSpec, V1PriorityClass } from '@kubernetes/client-node';
import { GROUP } from '../api/types';
import { ApiError, MigrationFailure, ignoreNotFound, isAlreadyExists } from '../errors';
import type { KubeClient } from '../kube/client';

/** The highest value of a PriorityClass that is not a system one. */
export const HIGHEST_USER_PRIORITY = 1_000_000_000;
const CLASSES = '/apis/scheduling.k8s.io/v1/priorityclasses';
const LABEL_MANAGED = `${GROUP}/never-preempts`;

export const nonPreemptingClassName = (value: number) => `podmigration-never-preempts-${value < 0 ? `minus-${-value}` : value}`;

/**
 * The Priority admission plugin reads PriorityClasses from a cache of its own: a class made
 * a moment ago may not be in it yet, and a pod that names it is refused. That passes by
 * itself: the pod is asked for again.
 */
export const classNotSeenYet = (e: unknown): boolean =>
  e instanceof ApiError && e.code === 403 && /no PriorityClass with name podmigration-never-preempts-/.test(e.message);

/** Why a pod of this spec could not be given a class that never preempts, or undefined. */
export function preemptionUnavoidable(spec: V1PodSpec): string | undefined {
  if (spec.preemptionPolicy === 'Never') return undefined;
  const value = spec.priority ?? 0;
  if (value <= HIGHEST_USER_PRIORITY) return undefined;
  return (
    `pod's priority ${value} (PriorityClass ${spec.priorityClassName}) is a system priority: no PriorityClass of that ` +
    `value that never preempts can be made for its copy; set spec.allowPreemption: true to move it anyway`
  );
}

/**
 * `pod` (a copy, or a source to recreate) made so that it never preempts: given the
 * never-preempting PriorityClass of its priority's value, made if it does not exist yet.
 * A pod whose own class never preempts is left as it is.
 */
export async function neverPreempting(client: KubeClient, pod: V1Pod): Promise<V1Pod> {
  const spec = pod.spec!;
  if (spec.preemptionPolicy === 'Never') return pod;
  const why = preemptionUnavoidable(spec);
  if (why) throw new MigrationFailure('TargetPodRejected', why);
  const value = spec.priority ?? 0;
  const name = nonPreemptingClassName(value);
  let pc = await ignoreNotFound(client.getRecent<V1PriorityClass>(`${CLASSES}/${name}`, 60_000));
  if (!pc) {
    try {
      pc = await client.create<V1PriorityClass>(CLASSES, {
        apiVersion: 'scheduling.k8s.io/v1',
        kind: 'PriorityClass',
        metadata: { name, labels: { [LABEL_MANAGED]: 'true' } },
        value,
        preemptionPolicy: 'Never',
        globalDefault: false,
        description: `Priority ${value}, never preempting: given by the podmigration operator to the pods it creates, so that a move never evicts another pod.`,
      });
    } catch (e) {
      if (!isAlreadyExists(e)) {
        if (e instanceof ApiError && e.code === 403)
          throw new MigrationFailure(
            'TargetPodRejected',
            `could not create PriorityClass ${name} for a copy that never preempts: ${e.message}`,
          );
        throw e;
      }
      pc = await client.get<V1PriorityClass>(`${CLASSES}/${name}`);
    }
  }
  if (pc.value !== value || pc.preemptionPolicy !== 'Never') {
    throw new MigrationFailure(
      'TargetPodRejected',
      `PriorityClass ${name} exists with value ${pc.value} and preemptionPolicy ${pc.preemptionPolicy}, not ${value} and Never: it is not this operator's`,
    );
  }
  const { priority: _p, preemptionPolicy: _pp, ...rest } = spec;
  return { ...pod, spec: { ...rest, priorityClassName: name } };
}
