// Building the optimized copy of the source pod (step 3). Pure function.
import { createHash } from 'node:crypto';
import type {
  V1Affinity,
  V1Container,
  V1NodeSelectorRequirement,
  V1NodeSelectorTerm,
  V1Pod,
  V1PodSpec,
  V1Volume,
} from '@kubernetes/client-node';
import {
  ANNOTATION_CLAIM,
  ANNOTATION_ORIGIN,
  CHECKPOINT_MOUNT_PATH,
  CHECKPOINT_VOLUME,
  type PodMigrationSpec,
  withDefaults,
} from '../api/types';
import { migrationMarks } from './marks';

export interface TargetPodOptions {
  name: string;
  where: Destination;
  migrationName: string;
  migrationUid: string;
  /** Names of the containers to keep (the running ones). */
  keep: ReadonlySet<string>;
  checkpointPVC?: string;
  /** Labels of the source left off the copy (Surge mode: its ReplicaSet's selector). */
  withhold?: Readonly<Record<string, string>>;
}

/**
 * Name of the new pod: deterministic from the migration's UID, so a restarted operator
 * finds the pod it already made instead of making a second one.
 */
export function targetPodName(podName: string, migrationUid: string): string {
  const suffix = createHash('sha256').update(migrationUid).digest('hex').slice(0, 5);
  return `${podName.slice(0, 253 - 10).replace(/[-.]+$/, '')}-mig-${suffix}`;
}

/** Name of the checkpoint claim: the seed's pattern, from the migration's persisted start time. */
export function checkpointPVCName(podName: string, startTime: string): string {
  const unixSeconds = Math.floor(Date.parse(startTime) / 1000);
  return `checkpoint-${podName.slice(0, 253 - 22).replace(/[-.]+$/, '')}-${unixSeconds}`;
}

/** The service-account token volume that admission injects; it re-injects it on the copy. */
function isInjectedTokenVolume(v: V1Volume): boolean {
  return v.name.startsWith('kube-api-access-') && !!v.projected?.sources?.some((s) => s.serviceAccountToken);
}

/**
 * What apply tools track their own objects by. A copy carrying them would be taken for the
 * tool's object: `kubectl apply --prune` and Argo CD could prune the moved workload, Flux
 * could garbage-collect it. Labels Services select on (app, app.kubernetes.io/*) are kept.
 */
const APPLY_TOOL_ANNOTATIONS = ['kubectl.kubernetes.io/last-applied-configuration', 'argocd.argoproj.io/tracking-id'];
const APPLY_TOOL_LABELS = [
  'kustomize.toolkit.fluxcd.io/name',
  'kustomize.toolkit.fluxcd.io/namespace',
  'helm.toolkit.fluxcd.io/name',
  'helm.toolkit.fluxcd.io/namespace',
];

/**
 * What the API server sets on a new pod itself: the node it is bound to, and the overhead
 * that RuntimeClass admission fills from the pod's RuntimeClass (and refuses when it differs,
 * as it does once that class's overhead has changed).
 */
const withoutServerSet = ({ nodeName: _bound, overhead: _overhead, ...rest }: V1PodSpec): V1PodSpec => rest;

/** Pod-level resource claims (DRA) that one of these containers, or the pod's own resources, uses. */
function claimsUsed(spec: V1PodSpec, containers: readonly V1Container[]): V1PodSpec['resourceClaims'] {
  if (!spec.resourceClaims) return undefined;
  const used = new Set([...containers, { resources: spec.resources }].flatMap((c) => (c.resources?.claims ?? []).map((r) => r.name)));
  return spec.resourceClaims.filter((c) => used.has(c.name));
}

/**
 * Where a copy may go: the one node asked for, or anywhere kube-scheduler chooses except
 * `avoid` (spec.targetNode unset; spec.avoidSourceNode false leaves nothing avoided).
 */
export type Destination = { node: string } | { avoid?: string };

export function destinationOf(spec: PodMigrationSpec): Destination {
  if (spec.targetNode) return { node: spec.targetNode };
  return withDefaults(spec).avoidSourceNode ? { avoid: spec.sourceNode } : {};
}

/** Whether a pod on `node` is where the destination asks. */
export function allows(d: Destination, node: string): boolean {
  return 'node' in d ? d.node === node : d.avoid !== node;
}

/** "node-2", "any node but node-1", "any node": for messages. */
export function describeDestination(d: Destination): string {
  if ('node' in d) return d.node;
  return d.avoid ? `any node but ${d.avoid}` : 'any node';
}

/**
 * The pod's affinity with its required node affinity set to `where`, as the DaemonSet
 * controller pins its pods: a `matchFields` requirement on `metadata.name` (In [node], or
 * NotIn [avoided node]) added to each of the pod's own node selector terms, so that both
 * hold (one term of its own when it has none). kube-scheduler then places the pod,
 * checking everything else it asks for. An earlier pin (a pod moved before) is replaced;
 * with nothing to pin, it is only removed.
 */
export function pinnedTo(affinity: V1Affinity | undefined, where: Destination): V1Affinity | undefined {
  const pin: V1NodeSelectorRequirement | undefined =
    'node' in where
      ? { key: 'metadata.name', operator: 'In', values: [where.node] }
      : where.avoid
        ? { key: 'metadata.name', operator: 'NotIn', values: [where.avoid] }
        : undefined;
  const required = affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  const own = required?.nodeSelectorTerms?.length ? required.nodeSelectorTerms : [];
  const terms = (own.length || !pin ? own : [{}])
    .map((t: V1NodeSelectorTerm): V1NodeSelectorTerm => {
      const matchFields = [...(t.matchFields ?? []).filter((f) => f.key !== 'metadata.name'), ...(pin ? [pin] : [])];
      const { matchFields: _earlier, ...rest } = t;
      return matchFields.length ? { ...rest, matchFields } : rest;
    })
    // A term left empty (it held only an earlier pin) would match no node at all.
    .filter((t) => t.matchExpressions?.length || t.matchFields?.length);
  const { requiredDuringSchedulingIgnoredDuringExecution: _required, ...nodeAffinity } = affinity?.nodeAffinity ?? {};
  if (terms.length) Object.assign(nodeAffinity, { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } });
  const { nodeAffinity: _node, ...rest } = affinity ?? {};
  const result: V1Affinity = Object.keys(nodeAffinity).length ? { ...rest, nodeAffinity } : rest;
  return Object.keys(result).length ? result : undefined;
}

/** A pod like `source` that the API server will accept as new: nothing server-set copied. */
function copyPod(
  source: V1Pod,
  o: {
    name: string;
    where: Destination;
    keep?: ReadonlySet<string>;
    checkpointPVC?: string;
    labels?: Record<string, string>;
    withhold?: Readonly<Record<string, string>>;
    annotations?: Record<string, string>;
    /** Leave off what apply tools track their objects by (a copy is not theirs to prune). */
    untracked?: boolean;
  },
): V1Pod {
  const spec = structuredClone(source.spec!);
  const meta = source.metadata!;

  // Dropped: the token volume admission injects (it injects a fresh one), and the checkpoint
  // of an earlier migration (this migration mounts its own, if any).
  const dropped = new Set((spec.volumes ?? []).filter((v) => isInjectedTokenVolume(v) || v.name === CHECKPOINT_VOLUME).map((v) => v.name));
  const volumes = (spec.volumes ?? []).filter((v) => !dropped.has(v.name));
  const withoutDropped = <T extends { volumeMounts?: { name: string }[] }>(c: T): T => ({
    ...c,
    volumeMounts: (c.volumeMounts ?? []).filter((m) => !dropped.has(m.name)),
  });

  let containers = spec.containers.filter((c) => !o.keep || o.keep.has(c.name)).map(withoutDropped);
  const initContainers = spec.initContainers?.map(withoutDropped);
  if (o.checkpointPVC) {
    volumes.push({ name: CHECKPOINT_VOLUME, persistentVolumeClaim: { claimName: o.checkpointPVC } });
    containers = containers.map((c) => ({
      ...c,
      volumeMounts: [...(c.volumeMounts ?? []), { name: CHECKPOINT_VOLUME, mountPath: CHECKPOINT_MOUNT_PATH }],
    }));
  }
  const tidy = <T extends { volumeMounts?: unknown[] }>(c: T): T => {
    if (c.volumeMounts && c.volumeMounts.length === 0) delete c.volumeMounts;
    return c;
  };

  delete spec.ephemeralContainers;
  // The claim belongs to the source pod and the migration holding it, not to its copies;
  // a copy is no apply tool's object either.
  const notCopied = new Set([ANNOTATION_CLAIM, ...(o.untracked ? APPLY_TOOL_ANNOTATIONS : [])]);
  const annotations = Object.fromEntries(Object.entries(meta.annotations ?? {}).filter(([k]) => !notCopied.has(k)));
  const untrackedLabels = new Set(o.untracked ? APPLY_TOOL_LABELS : []);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: o.name,
      namespace: meta.namespace,
      labels: Object.fromEntries(
        Object.entries({ ...meta.labels, ...o.labels }).filter(([k]) => !(o.withhold && k in o.withhold) && !untrackedLabels.has(k)),
      ),
      annotations: { ...annotations, ...(o.annotations ?? {}) },
    },
    spec: {
      ...withoutServerSet(spec),
      // A device claimed only by a container left behind is freed, not claimed again.
      ...(spec.resourceClaims ? { resourceClaims: claimsUsed(spec, [...containers, ...(initContainers ?? [])]) } : {}),
      affinity: pinnedTo(spec.affinity, o.where),
      containers: containers.map(tidy),
      ...(initContainers ? { initContainers: initContainers.map(tidy) } : {}),
      volumes,
    },
  };
}

/**
 * A copy of `source` pinned to the target node that keeps only the containers in
 * `opts.keep`, with the checkpoint volume mounted in each of them when there is one.
 * Nothing the API server or other controllers set on the source is copied: no status,
 * uid, resourceVersion, owner references, finalizers or injected token volume.
 */
export function buildTargetPod(source: V1Pod, opts: TargetPodOptions): V1Pod {
  const marks = migrationMarks(
    { name: opts.migrationName, uid: opts.migrationUid },
    { name: source.metadata!.name!, origin: source.metadata!.annotations?.[ANNOTATION_ORIGIN] },
  );
  return copyPod(source, {
    name: opts.name,
    where: opts.where,
    keep: opts.keep,
    checkpointPVC: opts.checkpointPVC,
    withhold: opts.withhold,
    untracked: true,
    ...marks,
  });
}

/** The source pod as it can be created again, pinned to its own node (DeleteBeforeCreate rollback). */
export function restorablePod(source: V1Pod): V1Pod {
  return copyPod(source, { name: source.metadata!.name!, where: { node: source.spec!.nodeName! } });
}
