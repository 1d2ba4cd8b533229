// What a pod strands: the requests it reserves for containers that have finished, which a
// copy keeping only its running containers would give back. Computed by the functions the
// migration's own savings use (podRequests, captureContainers), so that a report and the
// migration that follows it agree. Pure functions.
import type { V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_MIGRATABLE, type MigrationMode } from '../api/types';
import { captureContainers } from '../migration/podState';
import { controllingOwner, nodeBound } from '../migration/preflight';
import { selectorMatches } from '../migration/surge';
import { type Totals, podRequests } from '../migration/resources';

/** What the stranded-capacity cache keeps of a pod: its figures, and what selecting it takes. */
export interface StrandedPod {
  metadata: { name: string; namespace: string; uid?: string; resourceVersion?: string; labels?: Record<string, string> };
  node: string;
  stranded: Totals;
  /** The containers a copy would leave behind. */
  finished: string[];
  /** Containers a copy would keep that have crashed (and so would crash in the copy too). */
  crashing: string[];
  /** When the last of them exited (ms since the epoch). */
  finishedAt: number;
  /** How a migration would move it; undefined when none can (a DaemonSet's or a static pod, or opted out). */
  mode?: MigrationMode;
}

/** A pod that strands nothing, as the cache keeps it: its key only. */
export interface NothingStranded {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  stranded?: undefined;
}

export type Scanned = StrandedPod | NothingStranded;

/**
 * A pod's stranded requests: what it reserves (as kube-scheduler computes it: sidecars,
 * init containers, pod-level requests, overhead) minus what a copy that keeps only its
 * running and crashed containers would reserve. Only a Running pod on a node, not being
 * deleted, with at least one container left to run strands anything. A pod whose figure
 * comes only from its init containers strands nothing: a copy runs them again.
 */
export function scanPod(pod: V1Pod): Scanned {
  const m = pod.metadata ?? {};
  const key = { name: m.name!, namespace: m.namespace!, resourceVersion: m.resourceVersion };
  const spec = pod.spec;
  if (!spec?.nodeName || pod.status?.phase !== 'Running' || m.deletionTimestamp) return { metadata: key };
  const containers = captureContainers(pod);
  const left = containers.filter((c) => !c.migrated).map((c) => c.name);
  if (left.length === 0 || left.length === containers.length) return { metadata: key };
  const kept = { ...spec, containers: spec.containers.filter((c) => !left.includes(c.name)) };
  const before = podRequests(spec);
  const after = podRequests(kept);
  const stranded = { cpu: Math.max(before.cpu - after.cpu, 0), memory: Math.max(before.memory - after.memory, 0) };
  if (stranded.cpu <= 0 && stranded.memory <= 0) return { metadata: key };
  const statuses = new Map((pod.status?.containerStatuses ?? []).map((s) => [s.name, s]));
  const exited = left.map((n) => {
    const s = statuses.get(n);
    const t = s?.state?.terminated ?? s?.lastState?.terminated;
    return Date.parse(String(t?.finishedAt ?? '')) || Date.parse(String(m.creationTimestamp ?? '')) || 0;
  });
  return {
    metadata: { ...key, uid: m.uid, labels: m.labels },
    node: spec.nodeName,
    stranded,
    finished: left,
    crashing: containers
      .filter((c) => c.migrated && c.state !== 'running' && ((c.exitCode ?? 0) !== 0 || c.reason === 'CrashLoopBackOff'))
      .map((c) => c.name),
    finishedAt: Math.max(...exited),
    mode: likelyMode(pod),
  };
}

/**
 * How a migration would move the pod, read from the pod alone (step 1 decides for good,
 * with the owner in hand): Copy for a bare pod, Surge for a ReplicaSet's, Steer for any
 * other owner's; none for a DaemonSet's or a static pod, or one opted out of migrations.
 */
export function likelyMode(pod: V1Pod): MigrationMode | undefined {
  if (nodeBound(pod) || pod.metadata?.annotations?.[ANNOTATION_MIGRATABLE] === 'false') return undefined;
  const owner = controllingOwner(pod);
  if (!owner) return 'Copy';
  if (owner.kind === 'ReplicaSet' && owner.apiVersion === 'apps/v1') return 'Surge';
  return 'Steer';
}

export interface Thresholds {
  namespaceSelector?: V1LabelSelector;
  podSelector?: V1LabelSelector;
  /** Cores, bytes; a pod qualifies by either. */
  minCPU?: number;
  minMemory?: number;
  minFinishedSeconds: number;
}

/** Whether a scanned pod is a policy's candidate now (its namespace's labels given), or when it will be (ms), or never. */
export function qualifies(
  p: StrandedPod,
  t: Thresholds,
  namespaceLabels: Record<string, string> | undefined,
  now: number,
): true | false | { after: number } {
  if (!p.mode) return false;
  if (namespaceLabels === undefined || !selectorMatches(t.namespaceSelector, namespaceLabels)) return false;
  if (!selectorMatches(t.podSelector, p.metadata.labels)) return false;
  const enough =
    (t.minCPU !== undefined && p.stranded.cpu >= t.minCPU - 1e-9) || (t.minMemory !== undefined && p.stranded.memory >= t.minMemory);
  if (!enough) return false;
  const wait = p.finishedAt + t.minFinishedSeconds * 1000 - now;
  return wait > 0 ? { after: wait } : true;
}

/** Sums per key (namespace, node, or both), in whole nanocores and bytes, so that many small figures add up exactly. */
export function sumBy(pods: Iterable<StrandedPod>, key: (p: StrandedPod) => string): Map<string, Totals & { pods: number }> {
  const sums = new Map<string, { nanocores: number; bytes: number; pods: number }>();
  for (const p of pods) {
    const k = key(p);
    const t = sums.get(k) ?? { nanocores: 0, bytes: 0, pods: 0 };
    t.nanocores += Math.round(p.stranded.cpu * 1e9);
    t.bytes += Math.round(p.stranded.memory);
    t.pods += 1;
    sums.set(k, t);
  }
  return new Map([...sums].map(([k, t]) => [k, { cpu: t.nanocores / 1e9, memory: t.bytes, pods: t.pods }]));
}
