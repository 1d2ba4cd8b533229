// The PodMigration resource (migration.ai-storage.io/v1alpha1), as the CRD in crds/ defines it.
import type { V1LabelSelector, V1Pod } from '@kubernetes/client-node';

export const GROUP = 'migration.ai-storage.io';
export const VERSION = 'v1alpha1';
export const PLURAL = 'podmigrations';
export const KIND = 'PodMigration';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** On every object the operator creates: the name of the PodMigration that made it. */
export const LABEL_MIGRATION = `${GROUP}/migration`;
/** On the target pod: the source pod's name. */
export const ANNOTATION_MIGRATED_FROM = `${GROUP}/migrated-from`;
/** On the target pod: the name of the first pod of its line (kept from copy to copy). */
export const ANNOTATION_ORIGIN = `${GROUP}/origin`;
/** On every object the operator creates: the UID of the PodMigration that made it. */
export const ANNOTATION_MIGRATION_UID = `${GROUP}/migration-uid`;

/**
 * On the source pod while a migration holds it: `<migration name>/<migration UID>`. Written
 * with a resourceVersion precondition in step 1 and checked again before the copy is made
 * and before the source is evicted, so two migrations of one pod can never both proceed.
 */
export const ANNOTATION_CLAIM = `${GROUP}/claimed-by`;

/** Held while a migration may have something to clean up when its record is deleted. */
export const FINALIZER = `${GROUP}/cleanup`;
/** Set to "true" to cancel a migration and keep its record (the spec is immutable). */
export const ANNOTATION_CANCEL = `${GROUP}/cancel`;

export const CHECKPOINT_VOLUME = 'checkpoint-volume';
export const CHECKPOINT_MOUNT_PATH = '/migration-checkpoint';
export const CHECKPOINT_LABELS = {
  app: 'ai-storage-orchestrator',
  component: 'migration-checkpoint',
} as const;

export const PHASES = [
  'Pending',
  'CapturingState',
  'Checkpointing',
  'CreatingTargetPod',
  'DeletingSourcePod',
  'CollectingMetrics',
  'Completed',
  'Failed',
  'Cancelled',
] as const;
export type Phase = (typeof PHASES)[number];
export const TERMINAL_PHASES: readonly Phase[] = ['Completed', 'Failed', 'Cancelled'];

/**
 * Copy: a bare pod is copied and the source evicted. Surge: a ReplicaSet adopts the Ready
 * copy and removes the source. Steer: another owner's replacement is steered to the target.
 */
export type MigrationMode = 'Copy' | 'Surge' | 'Steer';

/**
 * On the dry run of a Steer migration's replacement (never stored): the migration's UID. The
 * webhook steers it as it would the replacement, which shows that the API server calls the
 * webhook for the owner's pods before the source is evicted.
 */
export const ANNOTATION_STEER_PROBE = `${GROUP}/steer-probe`;

/**
 * Pod annotation, or namespace label (the pod's annotation wins): "migrate" asks that an
 * eviction of the pod become a migration (the eviction webhook).
 */
export const ON_EVICTION = `${GROUP}/on-eviction`;
/** On a PodMigration: what made it ("eviction", "rest-api", "node-drain"). */
export const LABEL_CREATED_BY = `${GROUP}/created-by`;
/** On a PodMigration an eviction started: the user whose eviction it answered. */
export const ANNOTATION_EVICTED_BY = `${GROUP}/evicted-by`;

/** A pod annotation: "false" opts the pod out of migration. */
export const ANNOTATION_MIGRATABLE = `${GROUP}/migratable`;
/** The kubelet's annotation on the mirror of a static pod. */
export const ANNOTATION_MIRROR = 'kubernetes.io/config.mirror';
/** Which pod a ReplicaSet removes first when it has one too many (lowest first). */
export const ANNOTATION_DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';

export type StepState = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Skipped';

export interface PodMigrationSpec {
  podName: string;
  sourceNode: string;
  /** Unset: kube-scheduler chooses, anywhere but sourceNode unless avoidSourceNode is false. */
  targetNode?: string;
  /** Only with targetNode unset: false lets the copy land on the source node too. */
  avoidSourceNode?: boolean;
  preservePV?: boolean;
  checkpoint?: { size?: string; storageClassName?: string };
  timeoutSeconds?: number;
  readyTimeoutSeconds?: number;
  metricsDelaySeconds?: number;
  strategy?: 'CreateBeforeDelete' | 'DeleteBeforeCreate';
  /** Let the copy preempt lower-priority pods on the target (default: it never preempts). */
  allowPreemption?: boolean;
  /** Leave crashed containers behind too (default: only containers that exited 0). */
  dropCrashedContainers?: boolean;
}

/** How the owner's replacement of the source is recognised (one of the three). */
export type SteerReplacement = { name: string } | { completionIndex: string } | { onlyNewPod: true };

export interface SteerStatus {
  owner: { apiVersion: string; kind: string; name: string; uid: string };
  replacement: SteerReplacement;
  /** Set (and persisted) when the webhook is armed for the owner, before the source is evicted. */
  armedAt?: string;
  /** The PriorityClass the replacement is admitted with so that it never preempts (unless spec.allowPreemption). */
  priorityClassName?: string;
  /** Replacements pinned to a node the scheduler refused, removed (they never ran) so that the owner recreates them unpinned. */
  unpinned?: string[];
}

export interface PodRef {
  name: string;
  uid: string;
  node: string;
}

export interface SourcePodRef extends PodRef {
  /** Persisted before step 4 asks for the eviction; cleared when the eviction is refused. */
  evictionRequestedAt?: string;
}

export interface StepStatus {
  name: string;
  state: StepState;
  startTime?: string;
  completionTime?: string;
  message?: string;
}

export interface ContainerRecord {
  name: string;
  state: 'running' | 'waiting' | 'terminated';
  reason?: string;
  /** How it last ended, when it has: 0 is finished work, anything else a crash. */
  exitCode?: number;
  restartCount: number;
  migrated: boolean;
}

/** Requests as kube-scheduler counts them; extended resources (nvidia.com/gpu: "1") by their own name. */
export interface ResourceFigures {
  cpu: string;
  memory: string;
  /** DRA devices allocated to the claims the pod uses. */
  devices?: number;
  [extendedResource: string]: string | number | undefined;
}

export interface Savings {
  cpuPercent?: number;
  memoryPercent?: number;
  cpu: string;
  memory: string;
  basis: 'requests';
  /** Extended resources and DRA devices (`devices`) the move freed, by name. */
  freed?: Record<string, string>;
  /** The same, in a few words ("1 nvidia.com/gpu"): kubectl get -o wide shows it. */
  devices?: string;
}

/** Measured usage (metrics.k8s.io): CPU and memory only. */
export interface UsageFigures {
  cpu: string;
  memory: string;
}

export interface Usage {
  available: boolean;
  message?: string;
  before?: UsageFigures;
  after?: UsageFigures;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface PodMigrationStatus {
  observedGeneration?: number;
  phase?: Phase;
  step?: number;
  progress?: string;
  reason?: string;
  message?: string;
  startTime?: string;
  completionTime?: string;
  durationSeconds?: number;
  steps?: StepStatus[];
  sourcePod?: SourcePodRef;
  /** With DeleteBeforeCreate: the source pod as captured in step 1, for the copy and a rollback. */
  sourcePodManifest?: V1Pod;
  /** node: where it is bound; unset while kube-scheduler has not placed it (spec.targetNode unset). */
  targetPod?: Omit<PodRef, 'node'> & { node?: string };
  /** The node the pod moved to: spec.targetNode, or the one kube-scheduler chose. */
  targetNode?: string;
  /** How the pod moves; see MigrationMode. */
  mode?: MigrationMode;
  /** Surge mode: the owning ReplicaSet, and the labels left off the copy until it is Ready. */
  surge?: {
    replicaSet: { name: string; uid: string };
    withheldLabels: Record<string, string>;
    /** The source's own pod-deletion-cost, put back should the hand-over be undone. */
    deletionCost?: string;
  };
  /** Steer mode: the owner whose replacement of the source the webhook pins to the target node. */
  steer?: SteerStatus;
  checkpointPVC?: string;
  containers?: ContainerRecord[];
  resources?: {
    original?: ResourceFigures;
    optimized?: ResourceFigures;
    savings?: Savings;
    usage?: Usage;
  };
  conditions?: Condition[];
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
}

export interface PodMigration {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: PodMigrationSpec;
  status?: PodMigrationStatus;
}

/** The CRD's defaults for the spec (a unit test holds the two equal). */
export const SPEC_DEFAULTS = {
  preservePV: false,
  checkpoint: { size: '1Gi' },
  timeoutSeconds: 600,
  readyTimeoutSeconds: 300,
  metricsDelaySeconds: 30,
  strategy: 'CreateBeforeDelete',
  allowPreemption: false,
  dropCrashedContainers: false,
  avoidSourceNode: true,
} as const satisfies Partial<PodMigrationSpec>;

/** Spec values with the CRD's defaults applied (the API server applies them too). */
export function withDefaults(spec: PodMigrationSpec) {
  const d = SPEC_DEFAULTS;
  return {
    ...spec,
    preservePV: spec.preservePV ?? d.preservePV,
    checkpointSize: spec.checkpoint?.size ?? d.checkpoint.size,
    storageClassName: spec.checkpoint?.storageClassName,
    timeoutSeconds: spec.timeoutSeconds ?? d.timeoutSeconds,
    readyTimeoutSeconds: spec.readyTimeoutSeconds ?? d.readyTimeoutSeconds,
    metricsDelaySeconds: spec.metricsDelaySeconds ?? d.metricsDelaySeconds,
    deleteFirst: (spec.strategy ?? d.strategy) === 'DeleteBeforeCreate',
    allowPreemption: spec.allowPreemption ?? d.allowPreemption,
    dropCrashedContainers: spec.dropCrashedContainers ?? d.dropCrashedContainers,
    avoidSourceNode: spec.avoidSourceNode ?? d.avoidSourceNode,
  };
}

// NodeDrain (cluster-scoped): empties a node by migrating what can move and evicting the rest.

export const DRAIN_PLURAL = 'nodedrains';
export const DRAIN_KIND = 'NodeDrain';
/** On the PodMigrations a NodeDrain creates: its name. */
export const LABEL_NODE_DRAIN = `${GROUP}/node-drain`;
/** Held while a NodeDrain may have a node to uncordon and migrations to cancel. */
export const DRAIN_FINALIZER = `${GROUP}/drain-cleanup`;

export const DRAIN_PHASES = ['Pending', 'Draining', 'Drained', 'Failed'] as const;
export type DrainPhase = (typeof DRAIN_PHASES)[number];

export interface NodeDrainSpec {
  nodeName: string;
  namespaceSelector?: V1LabelSelector;
  podSelector?: V1LabelSelector;
  evictUnmovable?: boolean;
  timeoutSeconds?: number;
}

export interface DrainPodCounts {
  total: number;
  migrated: number;
  evicted: number;
  pending: number;
  failed: number;
  skipped: number;
}

export interface DrainItem {
  namespace: string;
  name: string;
  uid: string;
  action: 'Migrate' | 'Evict' | 'Skip';
  migration?: string;
  result?: 'Migrated' | 'Evicted' | 'Failed' | 'Skipped';
  message?: string;
}

export interface NodeDrainStatus {
  observedGeneration?: number;
  phase?: DrainPhase;
  reason?: string;
  message?: string;
  startTime?: string;
  completionTime?: string;
  cordoned?: boolean;
  pods?: DrainPodCounts;
  items?: DrainItem[];
  conditions?: Condition[];
}

export interface NodeDrain {
  apiVersion: string;
  kind: string;
  metadata: Omit<ObjectMeta, 'namespace'> & { namespace?: string };
  spec: NodeDrainSpec;
  status?: NodeDrainStatus;
}

// ReclaimPolicy (cluster-scoped): finds the capacity finished containers strand, and may move it back.

export const RECLAIM_PLURAL = 'reclaimpolicies';
export const RECLAIM_KIND = 'ReclaimPolicy';
/** On the PodMigrations a ReclaimPolicy creates: its name. */
export const LABEL_RECLAIM_POLICY = `${GROUP}/reclaim-policy`;

export const RECLAIM_ACTIONS = ['Report', 'Migrate'] as const;
export type ReclaimAction = (typeof RECLAIM_ACTIONS)[number];

export interface ReclaimPolicySpec {
  namespaceSelector?: V1LabelSelector;
  podSelector?: V1LabelSelector;
  minStrandedCPU?: string | number;
  minStrandedMemory?: string | number;
  minFinishedSeconds?: number;
  action?: ReclaimAction;
  maxConcurrent?: number;
  maxCandidates?: number;
  allowDowntime?: boolean;
}

export interface ReclaimCandidate {
  namespace: string;
  pod: string;
  node: string;
  mode: MigrationMode;
  downtime: boolean;
  strandedCPU: string;
  strandedMemory: string;
  finishedContainers: string[];
  migration?: string;
  skipped?: string;
}

export interface ReclaimTotals {
  pods: number;
  strandedCPU: string;
  strandedMemory: string;
}

export interface ReclaimedFigures {
  migrations: number;
  cpu: string;
  memory: string;
}

export interface ReclaimPolicyStatus {
  observedGeneration?: number;
  candidates?: ReclaimCandidate[];
  totals?: ReclaimTotals;
  reclaimed?: ReclaimedFigures;
  inFlight?: number;
  message?: string;
  conditions?: Condition[];
}

export interface ReclaimPolicy {
  apiVersion: string;
  kind: string;
  metadata: Omit<ObjectMeta, 'namespace'> & { namespace?: string };
  spec: ReclaimPolicySpec;
  status?: ReclaimPolicyStatus;
}
