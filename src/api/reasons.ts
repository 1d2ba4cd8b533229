// Every reason the operator writes, in one place: the reasons a migration ends with
// (status.reason; the README's table lists exactly these, a unit test holds them equal),
// the reasons of the Reconciling condition while a step waits, and the reasons of the
// RolledBack condition. Steps fail only with a reason from here.

/** status.reason of a migration that ended, by the phase it ends in. */
export const END_REASONS = {
  PodNotFound: 'Failed',
  PodNotOnSourceNode: 'Failed',
  PodTerminating: 'Failed',
  PodNotRunning: 'Failed',
  OwnedByController: 'Failed',
  NodeBoundPod: 'Failed',
  ReplacementNotSteered: 'Failed',
  OwnerWillNotRecreate: 'Failed',
  EvictionWouldFailOwner: 'Failed',
  ReplacementNotIdentifiable: 'Failed',
  ResourceClaimPinned: 'Failed',
  TargetLacksDevice: 'Failed',
  MigrationOptedOut: 'Failed',
  MigrationInProgress: 'Failed',
  NoRunningContainers: 'Failed',
  ReadWriteOnceVolume: 'Failed',
  SourcePodNotEvicted: 'Failed',
  TargetNodeNotFound: 'Failed',
  TargetNodeNotReady: 'Failed',
  TargetNodeUnschedulable: 'Failed',
  QuotaExceeded: 'Failed',
  SourcePodChanged: 'Failed',
  CheckpointNameConflict: 'Failed',
  TargetNameConflict: 'Failed',
  TargetPodRejected: 'Failed',
  TargetPodUnschedulable: 'Failed',
  TargetPodFailed: 'Failed',
  TargetPodStartFailed: 'Failed',
  TargetPodNotReady: 'Failed',
  TargetPodDeleted: 'Failed',
  TargetPodLost: 'Failed',
  Timeout: 'Failed',
  AlreadyOnTarget: 'Completed',
  CancelRequested: 'Cancelled',
} as const;

export type EndReason = keyof typeof END_REASONS;
/** A reason a step can fail a migration with. */
export type FailureReason = { [K in EndReason]: (typeof END_REASONS)[K] extends 'Failed' ? K : never }[EndReason];

/** Reasons of the Reconciling condition: what a step waits for. */
export const WAITING_REASONS = {
  /** The pod is still starting (Pending); step 1 waits for it to run. */
  WaitingForPod: 'WaitingForPod',
  /** Over --max-migrations-in-flight or --max-migrations-per-node. */
  MigrationLimitReached: 'MigrationLimitReached',
  /** A PodDisruptionBudget refuses the eviction (429). */
  EvictionBlocked: 'EvictionBlocked',
  /** The eviction is refused otherwise (a permission, a webhook). */
  EvictionRefused: 'EvictionRefused',
  /** Surge: the ReplicaSet does not have all its replicas Ready yet. */
  ReplicaSetNotSettled: 'ReplicaSetNotSettled',
  /** The pod on the target is not Ready (again). */
  TargetPodNotReady: 'TargetPodNotReady',
} as const;

export type WaitingReason = keyof typeof WAITING_REASONS;

/** Reasons of the RolledBack condition: what undoing a failed or cancelled migration left. */
export const ROLLBACK_REASONS = {
  /** True: the source runs, and what the migration made is gone. */
  SourcePodRunning: true,
  /** True (DeleteBeforeCreate): the source was recreated on its node. */
  SourcePodRestored: true,
  /** False: what the migration made is kept, since the source is not there to fall back to. */
  TargetPodKept: false,
  /** False: the source is gone and the migration made nothing. */
  NoPodLeft: false,
  /** False: the source could not be recreated, its namespace is being deleted. */
  NamespaceTerminating: false,
  /** False: the source could not be recreated (refused). */
  SourcePodNotRestored: false,
  /** True (Surge): the ReplicaSet removed the source itself and holds the workload; the copy it had not adopted was removed. */
  OwnerHoldsWorkload: true,
  /** False (Steer): the source was evicted, and its owner recreated it elsewhere, not steered. */
  OwnerRecreatedPod: false,
} as const;

export type RollbackReason = keyof typeof ROLLBACK_REASONS;
