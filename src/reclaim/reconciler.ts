// Reconciles one ReclaimPolicy: reads the stranded-capacity cache, lists the pods that strand
// at least its thresholds, and with action Migrate starts PodMigrations for the largest,
// within its own maxConcurrent and the operator's cluster-wide limit, skipping pods a
// migration already moves. What it reports is recomputed from the cluster each time: the
// candidates from the pods as they are now, the reclaimed figures from its completed
// PodMigrations.
import { isDeepStrictEqual } from 'node:util';
import type { V1Namespace } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  API_VERSION,
  GROUP,
  KIND,
  LABEL_CREATED_BY,
  LABEL_RECLAIM_POLICY,
  type PodMigration,
  RECLAIM_KIND,
  RECLAIM_PLURAL,
  type ReclaimCandidate,
  type ReclaimPolicy,
  type ReclaimPolicyStatus,
  VERSION,
} from '../api/types';
import { isAlreadyExists, isNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import { formatCpu, formatMemory, fromFigures, parseQuantity } from '../migration/resources';
import { canRollBack, isTerminal, kstatusConditions } from '../migration/status';
import { type StrandedPod, type Thresholds, qualifies } from './stranded';

export const reclaimPath = (name?: string) => `/apis/${GROUP}/${VERSION}/${RECLAIM_PLURAL}${name ? `/${name}` : ''}`;

/** The PodMigration a ReclaimPolicy starts for a pod: one per pod (whichever policy asks first), found again by its name. */
export const reclaimMigrationName = (podUid: string) => `reclaim-${podUid}`;

/**
 * Whether a migration takes a place under a limit: not started yet, or not yet past its
 * source's removal. One whose source is gone only waits to measure (as the operator's own
 * limits count it), so the next pod need not wait for it.
 */
const occupies = (m: PodMigration) =>
  !isTerminal(m.status?.phase) && (!m.status?.phase || m.status.phase === 'Pending' || canRollBack(m.status.phase));

/** How often a policy with migrations in flight is looked at again; and at the latest, any policy. */
const IN_FLIGHT_POLL_MS = 2_000;
const RESYNC_MS = 60_000;

export interface ReclaimReconcilerOptions {
  client: KubeClient;
  log: Logger;
  stranded: () => Iterable<StrandedPod>;
  migrations: { get(name: string, namespace?: string): PodMigration | undefined; list(namespace?: string): readonly PodMigration[] };
  /** The one namespace the operator watches, if any. */
  namespace?: string;
  /** The operator's cluster-wide limit on migrations in flight: a policy never queues more than it leaves room for. */
  clusterLimit: number;
}

export class ReclaimReconciler {
  constructor(private readonly o: ReclaimReconcilerOptions) {}

  /** Brings one policy's status (and, for Migrate, its migrations) up to date; when to look again (ms). */
  async reconcile(name: string, now = Date.now()): Promise<number | undefined> {
    const { client } = this.o;
    const rp = await client.get<ReclaimPolicy>(reclaimPath(name)).catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
    if (!rp || rp.metadata.deletionTimestamp) return undefined;
    const spec = rp.spec;
    const status: ReclaimPolicyStatus = { ...structuredClone(rp.status ?? {}) };
    let thresholds: Thresholds;
    try {
      thresholds = {
        namespaceSelector: spec.namespaceSelector,
        podSelector: spec.podSelector,
        minCPU: spec.minStrandedCPU !== undefined ? parseQuantity(spec.minStrandedCPU) : undefined,
        minMemory: spec.minStrandedMemory !== undefined ? parseQuantity(spec.minStrandedMemory) : undefined,
        minFinishedSeconds: spec.minFinishedSeconds ?? 300,
      };
    } catch (e) {
      return this.write(rp, { ...status, message: `spec: ${(e as Error).message}` }, { stalled: 'InvalidSpec' }, now);
    }

    // The candidates, largest first.
    const namespaces = await this.namespaceLabels(!!spec.namespaceSelector);
    let nextMs = RESYNC_MS;
    const found: StrandedPod[] = [];
    for (const p of this.o.stranded()) {
      const q = qualifies(p, thresholds, namespaces ? namespaces.get(p.metadata.namespace) : {}, now);
      if (q === true) found.push(p);
      else if (q !== false) nextMs = Math.min(nextMs, q.after + 100);
    }
    found.sort(
      (a, b) =>
        b.stranded.cpu - a.stranded.cpu ||
        b.stranded.memory - a.stranded.memory ||
        `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`),
    );

    const mine = this.o.migrations.list().filter((m) => m.metadata.labels?.[LABEL_RECLAIM_POLICY] === name);
    let inFlight = mine.filter((m) => !isTerminal(m.status?.phase)).length;
    const started: string[] = [];
    if (spec.action === 'Migrate') {
      const all = this.o.migrations.list();
      const moving = new Set(all.filter((m) => !isTerminal(m.status?.phase)).map((m) => `${m.metadata.namespace}/${m.spec.podName}`));
      let room = Math.min((spec.maxConcurrent ?? 1) - mine.filter(occupies).length, this.o.clusterLimit - all.filter(occupies).length);
      for (const p of found) {
        if (room <= 0) break;
        const { namespace, name: pod, uid } = p.metadata;
        if ((p.mode === 'Steer' && !spec.allowDowntime) || moving.has(`${namespace}/${pod}`) || !uid) continue;
        // One per pod, ever: a migration of it that ended (Failed, say) is not tried again.
        if (this.o.migrations.get(reclaimMigrationName(uid), namespace)) continue;
        const created = await client.create(paths.migrations(namespace), this.record(rp, p)).then(
          () => true,
          (e: unknown) => (isAlreadyExists(e) ? false : Promise.reject(e)),
        );
        if (!created) continue;
        this.o.log.info({ reclaimPolicy: name, namespace, pod, node: p.node }, 'started a migration to reclaim stranded requests');
        started.push(`${namespace}/${pod}`);
        room--;
        inFlight++;
      }
    }

    const total = found.reduce((t, p) => ({ cpu: t.cpu + p.stranded.cpu, memory: t.memory + p.stranded.memory }), { cpu: 0, memory: 0 });
    status.candidates = found.slice(0, spec.maxCandidates ?? 20).map((p): ReclaimCandidate => {
      const migration = p.metadata.uid ? reclaimMigrationName(p.metadata.uid) : undefined;
      const ours =
        !!migration &&
        (!!this.o.migrations.get(migration, p.metadata.namespace) || started.includes(`${p.metadata.namespace}/${p.metadata.name}`));
      return {
        namespace: p.metadata.namespace,
        pod: p.metadata.name,
        node: p.node,
        mode: p.mode!,
        downtime: p.mode === 'Steer',
        strandedCPU: formatCpu(p.stranded.cpu),
        strandedMemory: formatMemory(p.stranded.memory),
        finishedContainers: p.finished,
        ...(ours ? { migration } : {}),
      };
    });
    status.totals = { pods: found.length, strandedCPU: formatCpu(total.cpu), strandedMemory: formatMemory(total.memory) };
    const done = mine.filter((m) => m.status?.phase === 'Completed' && m.status.resources?.original && m.status.resources.optimized);
    const back = done.reduce(
      (t, m) => {
        const o = fromFigures(m.status!.resources!.original!);
        const n = fromFigures(m.status!.resources!.optimized!);
        return { cpu: t.cpu + Math.max(o.cpu - n.cpu, 0), memory: t.memory + Math.max(o.memory - n.memory, 0) };
      },
      { cpu: 0, memory: 0 },
    );
    status.reclaimed = { migrations: done.length, cpu: formatCpu(back.cpu), memory: formatMemory(back.memory) };
    status.inFlight = inFlight;
    const what = `${found.length} pod${found.length === 1 ? '' : 's'} strand ${status.totals.strandedCPU} CPU and ${status.totals.strandedMemory} memory`;
    status.message =
      spec.action === 'Migrate'
        ? `${what}; ${inFlight} migration${inFlight === 1 ? '' : 's'} in flight, ${done.length} completed`
        : `${what} (action Report: nothing is moved)`;
    await this.write(rp, status, inFlight > 0 ? { migrating: true } : {}, now);
    return inFlight > 0 ? IN_FLIGHT_POLL_MS : nextMs;
  }

  /** Namespace labels by name (when a selector needs them); only the watched namespace when the operator has one. */
  private async namespaceLabels(needed: boolean): Promise<Map<string, Record<string, string>> | undefined> {
    if (!needed) return undefined;
    const { client, namespace } = this.o;
    const items = namespace
      ? [await client.get<V1Namespace>(`/api/v1/namespaces/${namespace}`)]
      : (await client.get<{ items: V1Namespace[] }>('/api/v1/namespaces')).items;
    return new Map(items.map((n) => [n.metadata!.name!, n.metadata?.labels ?? {}]));
  }

  /** Writes the status when it changed; kstatus conditions: Ready once scanned with nothing in flight. */
  private async write(
    rp: ReclaimPolicy,
    status: ReclaimPolicyStatus,
    o: { stalled?: string; migrating?: boolean },
    now: number,
  ): Promise<number | undefined> {
    const generation = rp.metadata.generation;
    const reason = o.stalled ?? (o.migrating ? 'Migrating' : 'Scanned');
    status.conditions = kstatusConditions(status.conditions, {
      phase: reason,
      reason,
      message: status.message ?? '',
      done: o.stalled || o.migrating ? undefined : 'Scanned',
      stalled: !!o.stalled,
      generation,
      now: new Date(now).toISOString(),
    });
    status.observedGeneration = generation;
    // (The API server hands objects back with their keys sorted: compared as values, not text.)
    if (!isDeepStrictEqual(status, rp.status ?? {}))
      await this.o.client.replace(`${reclaimPath(rp.metadata.name)}/status`, { ...rp, status });
    return undefined;
  }

  /** The PodMigration that gives a pod's stranded requests back: a copy wherever kube-scheduler fits it, its own node included. */
  private record(rp: ReclaimPolicy, p: StrandedPod): PodMigration {
    return {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: {
        name: reclaimMigrationName(p.metadata.uid!),
        namespace: p.metadata.namespace,
        labels: { [LABEL_CREATED_BY]: 'reclaim-policy', [LABEL_RECLAIM_POLICY]: rp.metadata.name },
        ownerReferences: [{ apiVersion: API_VERSION, kind: RECLAIM_KIND, name: rp.metadata.name, uid: rp.metadata.uid }],
      },
      spec: { podName: p.metadata.name, sourceNode: p.node, avoidSourceNode: false },
    } as unknown as PodMigration;
  }
}
