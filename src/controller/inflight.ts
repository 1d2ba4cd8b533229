// Limits on migrations in flight: cluster-wide, out of each source node and into each
// target node (KubeVirt's parallelMigrationsPerCluster and parallelOutboundMigrationsPerNode;
// Koordinator's per-node limit). A migration over a limit waits in Pending, with a
// condition that names the limit, until one in flight ends; then the longest waiting that
// fit are let in first, in the order they were created.
//
// In flight: started (phase past Pending) and not yet past its source's removal (step 4), as
// the cache shows, plus those this process let in whose first write the cache does not show
// yet. A migration whose source is gone holds no slot through its stabilisation wait: a
// drain's next pods need not wait for it. Reads only the cache.
import type { Phase, PodMigration } from '../api/types';
import { WAITING_REASONS } from '../api/reasons';
import { canRollBack, isTerminal } from '../migration/status';

export interface Limits {
  /** Migrations in flight in the whole cluster (or watched namespace). */
  cluster: number;
  /** Migrations in flight out of one node, and into one node. */
  perNode: number;
}

export const DEFAULT_LIMITS: Limits = { cluster: 5, perNode: 2 };

/** Why a migration waits: the reason of its Reconciling condition. */
export const LIMIT_REASON = WAITING_REASONS.MigrationLimitReached;

interface Route {
  source: string;
  /** Unknown while kube-scheduler has not chosen (spec.targetNode unset): counted into no node. */
  target?: string;
}

interface Waiting extends Route {
  created: number;
  name: string;
}

const keyOf = (m: PodMigration) => `${m.metadata.namespace}/${m.metadata.name}`;
const routeOf = (m: PodMigration): Route => ({
  source: m.status?.sourcePod?.node ?? m.spec.sourceNode,
  target: m.status?.targetNode ?? m.spec.targetNode,
});
const started = (m: PodMigration) => !!m.status?.phase && m.status.phase !== 'Pending' && !isTerminal(m.status.phase);
/** Steps 1 to 4: until the source is gone, when there is nothing left to roll back. */
export const holdsSlot = (phase: Phase | undefined): boolean => canRollBack(phase);

class Counts {
  cluster = 0;
  readonly out = new Map<string, number>();
  readonly in = new Map<string, number>();

  add(r: Route): void {
    this.cluster++;
    this.out.set(r.source, (this.out.get(r.source) ?? 0) + 1);
    if (r.target) this.in.set(r.target, (this.in.get(r.target) ?? 0) + 1);
  }

  /** Why `r` does not fit (every limit it would pass), or undefined if it fits. */
  full(r: Route, limits: Limits): string | undefined {
    const why: string[] = [];
    if (this.cluster >= limits.cluster)
      why.push(`${this.cluster} migrations are in flight, the most --max-migrations-in-flight (${limits.cluster}) allows`);
    const out = this.out.get(r.source) ?? 0;
    if (out >= limits.perNode) why.push(`${out} out of node ${r.source}, the most --max-migrations-per-node (${limits.perNode}) allows`);
    const into = r.target ? (this.in.get(r.target) ?? 0) : 0;
    if (into >= limits.perNode) why.push(`${into} into node ${r.target}, the most --max-migrations-per-node (${limits.perNode}) allows`);
    return why.length ? why.join('; ') : undefined;
  }
}

export class InFlight {
  /** Let in by this process; kept until the cache shows them ended or gone. */
  private readonly admitted = new Map<string, Route>();
  /** Over a limit, by key. */
  private readonly waiting = new Map<string, Waiting>();

  constructor(
    private readonly limits: Limits,
    private readonly migrations: { list(): readonly PodMigration[]; get(name: string, namespace?: string): PodMigration | undefined },
    /** Asks for a reconcile of a migration that was let in while it waited. */
    private readonly wake: (key: string) => void,
  ) {}

  /**
   * Lets a Pending migration in, or says which limit keeps it waiting. One that was let in
   * already (woken) stays in.
   */
  admit(m: PodMigration): { admitted: true } | { admitted: false; message: string } {
    const key = keyOf(m);
    if (this.admitted.has(key)) return { admitted: true };
    const route = routeOf(m);
    const full = this.count().full(route, this.limits);
    if (full) {
      this.waiting.set(key, { ...route, name: m.metadata.name, created: Date.parse(String(m.metadata.creationTimestamp ?? 0)) });
      return { admitted: false, message: `waiting for a migration slot: ${full}` };
    }
    this.waiting.delete(key);
    this.admitted.set(key, route);
    return { admitted: true };
  }

  /**
   * The migration has ended, is being deleted or is gone: its slot is free (`freed`: it
   * was in flight until now), and the migrations waiting longest that now fit are let in
   * and woken.
   */
  release(key: string, freed: boolean): void {
    const had = this.admitted.delete(key);
    const waited = this.waiting.delete(key);
    if ((!had && !waited && !freed) || this.waiting.size === 0) return;
    const counts = this.count(key); // the cache may not show its end yet
    for (const [k, w] of [...this.waiting].sort((a, b) => a[1].created - b[1].created || a[1].name.localeCompare(b[1].name))) {
      if (counts.cluster >= this.limits.cluster) break;
      const [namespace, name] = k.split('/');
      const m = this.migrations.get(name, namespace);
      if (!m || m.metadata.deletionTimestamp || started(m) || isTerminal(m.status?.phase)) {
        this.waiting.delete(k);
        continue;
      }
      if (counts.full(w, this.limits)) continue;
      counts.add(w);
      this.waiting.delete(k);
      this.admitted.set(k, w);
      this.wake(k);
    }
  }

  /** Migrations in flight now, for the metric. */
  get size(): number {
    return this.count().cluster;
  }

  private count(except?: string): Counts {
    const counts = new Counts();
    const seen = new Set<string>();
    for (const m of this.migrations.list()) {
      if (!holdsSlot(m.status?.phase)) continue;
      const key = keyOf(m);
      if (key === except) continue;
      seen.add(key);
      counts.add(this.admitted.get(key) ?? routeOf(m));
    }
    for (const [key, route] of this.admitted) if (!seen.has(key)) counts.add(route);
    return counts;
  }
}
