// Evicting the source pod through policy/v1, so PodDisruptionBudgets hold. Shared by step 4
// and, with strategy DeleteBeforeCreate, by step 3. A budget (429) or any other refusal
// (a missing permission, a webhook) is waited out with backoff until the migration's
// deadline; then the migration is rolled back with a reason that names the refusal.
import type { V1Pod } from '@kubernetes/client-node';
import { WAITING_REASONS } from '../api/reasons';
import type { PodMigrationStatus } from '../api/types';
import { ApiError, isNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import { type StepName, remainingMs, stepStartTime } from '../migration/status';
import type { StepContext, StepOutcome } from '../migration/context';

export type EvictionResult =
  | { kind: 'evicted' }
  | { kind: 'gone' } // already gone, or replaced by another pod of that name (not ours)
  | { kind: 'blocked' | 'refused'; message: string; retryAfterMs: number };

export async function evictSource(
  client: KubeClient,
  namespace: string,
  status: PodMigrationStatus,
  stepName: StepName,
  now: string,
): Promise<EvictionResult> {
  const source = status.sourcePod!;
  try {
    await client.create(paths.eviction(namespace, source.name), {
      apiVersion: 'policy/v1',
      kind: 'Eviction',
      metadata: { name: source.name, namespace },
      deleteOptions: { preconditions: { uid: source.uid } },
    });
    return { kind: 'evicted' };
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    // Gone, or replaced by another pod of that name (the UID precondition failed). Any
    // other conflict (the pod changed while the API server checked its budget) is retried.
    if (isNotFound(e) || (e.code === 409 && /precondition/i.test(e.message) && /UID/.test(e.message))) return { kind: 'gone' };
    if (e.code === 409) throw e;
    if (e.code >= 500) throw e;
    // Back off from 1s, doubling with the time already spent waiting, up to 30s.
    const waited = -remainingMs(stepStartTime(status, stepName, now), 0, now);
    const retryAfterMs = Math.min(Math.max(waited / 2, 1_000), 30_000);
    return { kind: e.code === 429 ? 'blocked' : 'refused', message: e.message, retryAfterMs };
  }
}

/**
 * Evicts `pod` (that exact pod: UID precondition): 'evicted', 'gone', or the refusal's words.
 * For a pod this migration made, not for the source (no intent is recorded).
 */
export async function evictPod(client: KubeClient, namespace: string, pod: V1Pod): Promise<'evicted' | 'gone' | string> {
  try {
    await client.create(paths.eviction(namespace, pod.metadata!.name!), {
      apiVersion: 'policy/v1',
      kind: 'Eviction',
      metadata: { name: pod.metadata!.name, namespace },
      deleteOptions: { preconditions: { uid: pod.metadata!.uid } },
    });
    return 'evicted';
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    if (isNotFound(e) || (e.code === 409 && /precondition/i.test(e.message))) return 'gone';
    if (e.code >= 500) throw e;
    return e.message;
  }
}

/**
 * Evicts the source once this migration's intent to do so is on record: it sets
 * status.sourcePod.evictionRequestedAt, persists the status, and only then sends the
 * eviction, in the same reconcile. A refused or blocked eviction clears the mark (in the
 * status written next), so that a source which disappears while the migration waits is
 * not taken for its own doing. Returns what the step waits for, or the eviction's result.
 */
export async function evictOnce(
  ctx: Pick<StepContext, 'client' | 'status' | 'now' | 'persist'>,
  namespace: string,
  stepName: StepName,
  /** Checked again after the status write, just before the request: throws, or returns what to wait for instead. */
  recheck?: () => Promise<StepOutcome | undefined>,
): Promise<StepOutcome | { kind: 'evicted' | 'gone' }> {
  const { client, status, now } = ctx;
  const ref = status.sourcePod!;
  if (!ref.evictionRequestedAt) {
    ref.evictionRequestedAt = now;
    await ctx.persist();
  }
  const wait = await recheck?.();
  if (wait) {
    delete ref.evictionRequestedAt;
    return wait;
  }
  const r = await evictSource(client, namespace, status, stepName, now);
  if (r.kind === 'evicted' || r.kind === 'gone') return r;
  delete ref.evictionRequestedAt;
  const what = r.kind === 'blocked' ? 'is blocked' : 'was refused';
  return {
    done: false,
    reason: r.kind === 'blocked' ? WAITING_REASONS.EvictionBlocked : WAITING_REASONS.EvictionRefused,
    requeueAfterMs: r.retryAfterMs,
    message: `eviction of source pod ${ref.name} ${what}: ${r.message}`,
  };
}
