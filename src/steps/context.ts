// What every step gets, and what it answers.
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { PodMigration, PodMigrationStatus } from '../api/types';
import type { KubeClient } from '../kube/client';

export interface Fresh {
  source?: V1Pod;
  target?: V1Pod;
}

export interface StepContext {
  /** The migration as read from the informer cache. Read only. */
  readonly migration: PodMigration;
  /** The status being built; a step records its findings here. */
  readonly status: PodMigrationStatus;
  readonly client: KubeClient;
  /** The pods this operator created, from the informer cache (labelled by migration). */
  readonly targetPods: { get(name: string, namespace: string): V1Pod | undefined };
  /** The time of this reconcile, ISO 8601. */
  readonly now: string;
  /**
   * spec.timeoutSeconds has passed (only step 4 runs then: it looks at the pods first, and
   * throws the deadline's failure instead of evicting).
   */
  readonly deadline?: { reason: string; message: string };
  /** The admission webhook runs, so other owners' pods can move in Steer mode. */
  readonly steering: boolean;
  /**
   * Writes the status as it is now, before the step goes on: for an intent that must be
   * on record before an irreversible request (the eviction of the source).
   */
  readonly persist: () => Promise<void>;
  /**
   * Puts the finalizer on the record (once), before the migration first changes anything,
   * so that deleting the record undoes what it did.
   */
  readonly hold: () => Promise<void>;
  /** Pods as this reconcile last read or wrote them from the API server (not the cache). */
  readonly fresh: Fresh;
  readonly log: Logger;
}

/**
 * A step either finishes (the migration moves on), or waits for something and asks to be
 * run again after `requeueAfterMs` at the latest; `reason` says why it is blocked, when
 * that is worth a condition. A step that cannot go on throws
 * MigrationFailure; any other error is transient and retried.
 */
export type StepOutcome =
  | {
      done: true;
      message: string;
      skipped?: boolean;
      /** Nothing is left to do: the migration completes now, with this reason (e.g. AlreadyOnTarget). */
      finished?: { reason: string };
    }
  | { done: false; message: string; requeueAfterMs: number; reason?: string };

export type Step = (ctx: StepContext) => Promise<StepOutcome>;
