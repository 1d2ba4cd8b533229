// What every step and mode gets, and what it answers. Types only.
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { EndReason, FailureReason, WaitingReason } from '../api/reasons';
import type { PodMigration, PodMigrationStatus, SourcePodRef } from '../api/types';
import type { KubeClient } from '../kube/client';
import type { RollbackOutcome } from './status';

export interface Fresh {
  source?: V1Pod;
  target?: V1Pod;
}

/** What the operator was started with that steps need. */
export interface Environment {
  /** The admission webhook runs, so other owners' pods can move in Steer mode. */
  readonly steering: boolean;
  /** Owners trusted to recreate an evicted pod (Steer mode), as `group/Kind`. */
  readonly steerOwnerKinds: ReadonlySet<string>;
  /** Asks the API server to call the webhook for an owner's new pods, or no longer. */
  readonly arming?: Arming;
}

/**
 * The webhook is called only for the pods of owners a Steer migration waits on: `arm`
 * returns once the configuration names the owner, `disarm` once it no longer does (for
 * that migration).
 */
export interface Arming {
  arm(migration: string, ownerUid: string): Promise<void>;
  disarm(migration: string): Promise<void>;
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
   * spec.timeoutSeconds has passed (only a step that runs past its deadline, step 4, sees
   * this: it looks at the pods first, and throws the deadline's failure instead of evicting).
   */
  readonly deadline?: { reason: FailureReason; message: string };
  readonly env: Environment;
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
  /** Records an Event on the migration. */
  readonly record: (type: 'Normal' | 'Warning', reason: string, message: string) => void;
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
      finished?: { reason: EndReason };
    }
  | { done: false; message: string; requeueAfterMs: number; reason?: WaitingReason };

export type Step = (ctx: StepContext) => Promise<StepOutcome>;

/** What undoing a failed or cancelled migration starts from, read from the API server. */
export interface UndoContext {
  readonly migration: PodMigration;
  /** The status as it ended; the mode may note here what it did (the status is written when it changes). */
  readonly status: PodMigrationStatus;
  readonly client: KubeClient;
  readonly env: Environment;
  /** The time of this reconcile, ISO 8601. */
  readonly now: string;
  readonly log: Logger;
  /** Records an Event on the migration. */
  readonly record: (type: 'Normal' | 'Warning', reason: string, message: string) => void;
  /** The pods this migration made (its label and UID), as the API server holds them now. */
  readonly pods: readonly V1Pod[];
  /** The source pod, as status or this migration's claim names it. */
  readonly ref: SourcePodRef;
  /** The pod of that name now, whatever its UID. */
  readonly found?: V1Pod;
  /** The source itself (same UID), if it exists. */
  readonly source?: V1Pod;
  /** The source exists and is not being deleted. */
  readonly sourceRuns: boolean;
}

/** Not done yet (asked again after `retryAfterMs`), or done, with what was left. */
export type UndoResult = { done: false; retryAfterMs?: number } | { done: true; outcome?: RollbackOutcome };
