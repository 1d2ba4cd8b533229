// Runs ReclaimPolicies, from a cluster-wide cache of what each pod strands. The pod watch
// keeps, per pod, only its figures (a pod that strands nothing: its name), so that the
// operator's memory stays small however many pods the cluster runs. A change in what is
// stranded brings every policy up to date within a second; the leader serves the stranded
// gauges from the same cache.
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { PodMigration, ReclaimPolicy } from '../api/types';
import { isConflict } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import { Informer } from '../kube/informer';
import { WorkQueue } from '../kube/workqueue';
import type { Metrics } from '../metrics';
import { ReclaimReconciler, reclaimPath } from './reconciler';
import { type Scanned, type StrandedPod, scanPod, sumBy } from './stranded';

export interface ReclaimControllerOptions {
  client: KubeClient;
  log: Logger;
  metrics: Metrics;
  migrations: { get(name: string, namespace?: string): PodMigration | undefined; list(namespace?: string): readonly PodMigration[] };
  namespace?: string;
  clusterLimit: number;
  workers?: number;
}

/** How long changes to pods are gathered before the policies look again. */
const SETTLE_MS = 1_000;

export class ReclaimController {
  private readonly queue = new WorkQueue();
  private readonly pods: Informer<Scanned>;
  private readonly policies: Informer<ReclaimPolicy>;
  private readonly reconciler: ReclaimReconciler;
  private workers: Promise<void>[] = [];
  private settle?: NodeJS.Timeout;

  constructor(private readonly o: ReclaimControllerOptions) {
    this.pods = new Informer<Scanned>({
      client: o.client,
      path: paths.pods(o.namespace),
      log: o.log,
      transform: (p) => scanPod(p as unknown as V1Pod),
      onChange: () => this.podsChanged(),
    });
    this.policies = new Informer<ReclaimPolicy>({
      client: o.client,
      path: reclaimPath(),
      log: o.log,
      onChange: (rp) => this.queue.add(rp.metadata.name),
    });
    this.reconciler = new ReclaimReconciler({
      client: o.client,
      log: o.log,
      stranded: () => this.stranded(),
      migrations: o.migrations,
      namespace: o.namespace,
      clusterLimit: o.clusterLimit,
    });
  }

  /** Every pod that strands something now. */
  *stranded(): Generator<StrandedPod> {
    for (const p of this.pods.list()) if (p.stranded) yield p;
  }

  /** Stranded figures by namespace and node, for the gauges. */
  byNamespaceAndNode(): { namespace: string; node: string; cpu: number; memory: number; pods: number }[] {
    return [...sumBy(this.stranded(), (p) => `${p.metadata.namespace}\n${p.node}`)].map(([k, t]) => {
      const [namespace, node] = k.split('\n');
      return { namespace, node, ...t };
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.pods.start(), this.policies.start()]);
    while (!this.pods.hasSynced || !this.policies.hasSynced) await new Promise((r) => setTimeout(r, 100));
    this.o.metrics.serveStranded(() => this.byNamespaceAndNode());
    this.workers = Array.from({ length: this.o.workers ?? 2 }, () => this.work());
  }

  async stop(): Promise<void> {
    clearTimeout(this.settle);
    this.queue.shutDown();
    await Promise.all([this.pods.stop(), this.policies.stop()]);
    await Promise.all(this.workers);
  }

  private podsChanged(): void {
    if (this.settle) return;
    this.settle = setTimeout(() => {
      this.settle = undefined;
      for (const rp of this.policies.list()) this.queue.add(rp.metadata.name);
    }, SETTLE_MS);
  }

  private async work(): Promise<void> {
    for (;;) {
      const name = await this.queue.get();
      if (name === undefined) return;
      try {
        const after = await this.reconciler.reconcile(name);
        this.queue.forget(name);
        if (after !== undefined) this.queue.addAfter(name, after);
      } catch (e) {
        const retryInMs = isConflict(e) ? (this.queue.forget(name), this.queue.addAfter(name, 200), 200) : this.queue.addRateLimited(name);
        this.o.log[isConflict(e) ? 'debug' : 'error'](
          { reclaimPolicy: name, err: e instanceof Error ? e.message : String(e), retryInMs },
          'reclaim policy reconcile failed; retrying',
        );
      } finally {
        this.queue.done(name);
      }
    }
  }
}
