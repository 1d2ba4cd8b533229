// Reconciles one ReclaimPolicy: reads the stranded-capacity cache, lists the pods that strand
// at least its thresholds, and with action Migrate starts PodMigrations for the largest,
// within its own maxConcurrent and the operator's cluster-wide limit, skipping pods a
// migration already moves. What it reports is recomputed from the cluster each time: the
// candidates from the pods as they are now, the reclaimed figures from its completed
// PodMigrations.
import { isDeepStrictEqual } from 'node:util';
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
import { isAlreadyExists, isNotFound, isRefusal } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import { formatCpu, formatMemory, fromFigures, parseQuantity } from '../migration/resources';
import { canRollBack, isTerminal, kstatusConditions } from '../migration/status';
import { selectorProblem } from '../migration/surge';
import { type StrandedPod, type Thresholds, qualifies, sumBy } from './stranded';

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
/** How long a PodMigration the API server refused is not asked for again. */
const REFUSAL_BACKOFF_MS = 60_000;

export interface ReclaimReconcilerOptions {
  client: KubeClient;
  log: Logger;
  stranded: () => Iterable<StrandedPod>;
  /** A namespace's labels, from the cache; undefined when there is no such namespace. */
  namespaceLabels: (name: string) => Record<string, string> | undefined;
  migrations: { get(name: string, namespace?: string): PodMigration | undefined; list(namespace?: string): readonly PodMigration[] };
  /** The operator's cluster-wide limit on migrations in flight: a policy never queues more than it leaves room for. */
  clusterLimit: number;
}

export class ReclaimReconciler {
  /** PodMigrations this process created, by namespace/name, until the cache shows them. */
  private readonly created = new Map<string, { policy: string; at: number }>();
  /** PodMigrations the API server refused, by namespace/name: when, and what it said. */
  private readonly refused = new Map<string, { at: number; message: string }>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: ReclaimReconcilerOptions) {}

  /** Runs `fn` after every other caller's `fn` has finished. */
  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** What this process created that `cached` does not show yet (forgotten after a minute: then it was deleted). */
  private unseen(cached: readonly PodMigration[]): { key: string; policy: string }[] {
    const seen = new Set(cached.map((m) => `${m.metadata.namespace}/${m.metadata.name}`));
    for (const [key, c] of this.created) if (seen.has(key) || Date.now() - c.at > 60_000) this.created.delete(key);
    return [...this.created].map(([key, c]) => ({ key, policy: c.policy }));
  }

  /** Brings one policy's status (and, for Migrate, its migrations) up to date; when to look again (ms). */
  async reconcile(name: string, now = Date.now()): Promise<number | undefined> {
    const { client } = this.o;
    const rp = await client.get<ReclaimPolicy>(reclaimPath(name)).catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
    if (!rp || rp.metadata.deletionTimestamp) return undefined;
    const spec = rp.spec;
    const status: ReclaimPolicyStatus = { ...structuredClone(rp.status ?? {}) };
    let thresholds: Thresholds;
    // The CRD's schema refuses malformed selectors; one stored before it did is refused here.
    const bad = selectorProblem(spec.namespaceSelector, 'spec.namespaceSelector') ?? selectorProblem(spec.podSelector, 'spec.podSelector');
    if (bad) return this.write(rp, { ...status, message: bad }, { stalled: 'InvalidSpec' }, now);
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

    let nextMs = RESYNC_MS;
    const found: StrandedPod[] = [];
    for (const p of this.o.stranded()) {
      const q = qualifies(p, thresholds, spec.namespaceSelector ? this.o.namespaceLabels(p.metadata.namespace) : {}, now);
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
    const started = new Set<string>();
    /** Why Migrate leaves a candidate where it is, by namespace/pod. */
    const skipped = new Map<string, string>();
    if (spec.action === 'Migrate') {
      // One policy at a time decides, counting what this process created that the cache does
      // not show yet: two policies never take the same room twice.
      await this.serially(async () => {
        for (const [k, r] of this.refused) if (Date.now() - r.at > REFUSAL_BACKOFF_MS) this.refused.delete(k);
        const all = this.o.migrations.list();
        const unseen = this.unseen(all);
        const moving = new Map(
          all.filter((m) => !isTerminal(m.status?.phase)).map((m) => [`${m.metadata.namespace}/${m.spec.podName}`, m.metadata.name]),
        );
        let room = Math.min(
          (spec.maxConcurrent ?? 1) - mine.filter(occupies).length - unseen.filter((u) => u.policy === name).length,
          this.o.clusterLimit - all.filter(occupies).length - unseen.length,
        );
        for (const p of found) {
          const { namespace, name: pod, uid } = p.metadata;
          const key = `${namespace}/${pod}`;
          const mig = reclaimMigrationName(uid!);
          const earlier = this.o.migrations.get(mig, namespace);
          const why = earlier
            ? isTerminal(earlier.status?.phase) && earlier.status?.phase !== 'Completed'
              ? `PodMigration ${mig} ended ${earlier.status?.phase} (${earlier.status?.reason ?? 'no reason'}): not tried again`
              : undefined
            : moving.has(key)
              ? `being moved by PodMigration ${moving.get(key)}`
              : p.mode === 'Steer' && !spec.allowDowntime
                ? 'moving it has downtime (Steer mode: an eviction, then its owner recreates it); allowDowntime is false'
                : p.crashing.length
                  ? `container ${p.crashing.join(', ')} crashes: a copy would keep it, and crash too`
                  : undefined;
          const refused = this.refused.get(`${namespace}/${mig}`);
          if (refused && !why) skipped.set(key, refused.message);
          if (why) skipped.set(key, why);
          if (why || refused || earlier || room <= 0 || unseen.some((u) => u.key === `${namespace}/${mig}`)) continue;
          try {
            await client.create(paths.migrations(namespace), this.record(rp, p));
          } catch (e) {
            if (isAlreadyExists(e)) continue;
            // A quota, a policy or an admission webhook that refuses it, a namespace going away:
            // this pod is left, the others are not.
            if (!isRefusal(e) && !isNotFound(e)) throw e;
            const message = `the API server refused its PodMigration: ${(e as Error).message}`;
            // Asked again a minute later, not at every look (a quota may be lifted).
            this.refused.set(`${namespace}/${mig}`, { at: Date.now(), message });
            skipped.set(key, message);
            continue;
          }
          this.created.set(`${namespace}/${mig}`, { policy: name, at: Date.now() });
          this.o.log.info({ reclaimPolicy: name, namespace, pod, node: p.node }, 'started a migration to reclaim stranded requests');
          started.add(key);
          room--;
          inFlight++;
        }
      });
    }

    const total = sumBy(found, () => '').get('') ?? { cpu: 0, memory: 0 };
    status.candidates = found.slice(0, spec.maxCandidates ?? 20).map((p): ReclaimCandidate => {
      const migration = p.metadata.uid ? reclaimMigrationName(p.metadata.uid) : undefined;
      const ours =
        !!migration &&
        (!!this.o.migrations.get(migration, p.metadata.namespace) || started.has(`${p.metadata.namespace}/${p.metadata.name}`));
      const why = skipped.get(`${p.metadata.namespace}/${p.metadata.name}`);
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
        ...(why ? { skipped: why } : {}),
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
    const flying = `${inFlight} migration${inFlight === 1 ? '' : 's'} in flight`;
    status.message =
      spec.action === 'Migrate'
        ? `${what}; ${flying}, ${done.length} completed${skipped.size ? `, ${skipped.size} skipped (candidates[].skipped says why)` : ''}`
        : `${what} (action Report: nothing is moved${inFlight ? `; ${flying}, started before` : ''})`;
    await this.write(rp, status, inFlight > 0 ? { migrating: true } : {}, now);
    return inFlight > 0 ? IN_FLIGHT_POLL_MS : nextMs;
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
