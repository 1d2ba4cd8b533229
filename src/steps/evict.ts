// Evicting the source pod through policy/v1, so PodDisruptionBudgets hold. Shared by step 4
// and, with strategy DeleteBeforeCreate, by step 3.
import type { PodMigrationStatus } from '../api/types';
import { remainingMs, stepStartTime } from '../controller/status';
import { ApiError, isNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';

export type EvictionResult =
  | { kind: 'evicted' }
  | { kind: 'gone' } // already gone, or replaced by another pod of that name (not ours)
  | { kind: 'blocked'; message: string; retryAfterMs: number }
  | { kind: 'refused'; message: string };

export async function evictSource(client: KubeClient, namespace: string, status: PodMigrationStatus, stepName: string, now: string): Promise<EvictionResult> {
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
    if (isNotFound(e) || e.code === 409) return { kind: 'gone' };
    if (e.code === 429) {
      // Back off from 1s, doubling with the time already spent blocked, up to 30s.
      const waited = -remainingMs(stepStartTime(status, stepName, now), 0, now);
      return { kind: 'blocked', message: e.message, retryAfterMs: Math.min(Math.max(waited / 2, 1_000), 30_000) };
    }
    if (e.code >= 400 && e.code < 500) return { kind: 'refused', message: e.message };
    throw e;
  }
}
