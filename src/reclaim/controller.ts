// Runs ReclaimPolicies, from a cluster-wide cache of what each pod strands. The pod watch
// keeps, per pod, only its figures (a pod that strands nothing: its name), so that the
// operator's memory stays small however many pods the cluster runs. A change in what is
// stranded (or in a namespace's labels) brings every policy up to date within a second; the
// leader serves the stranded
// gauges from the same cache.
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { PodMigration, ReclaimPolicy } from '../api/types';
import { type KubeClient, paths } from '../kube/client';
import { Informer } from '../kube/informer';
import { WorkQueue, runWorker } from '../kube/workqueue';
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

/** How long changes to pods and namespaces are gathered before the policies look again. */
const SETTLE_MS = 1_000;

export class ReclaimController {
  private readonly queue = new WorkQueue();
  private readonly pods: Informer<Scanned>;
  private readonly policies: Informer<ReclaimPolicy>;
  /** Namespaces, by their labels only (what namespace selectors read). */
  private readonly namespaces: Informer<V1Namespace>;
  private readonly reconciler: ReclaimReconciler;
  private workers: Promise<void>[] = [];
  private settle?: NodeJS.Timeout;

  constructor(private readonly o: ReclaimControllerOptions) {
    this.pods = new Informer<Scanned>({
      client: o.client,
      path: paths.pods(o.namespace),
      log: o.log,
      transform: (p) => scanPod(p as unknown as V1Pod),
      onChange: () => this.changed(),
    });
    this.namespaces = new Informer<V1Namespace>({
      client: o.client,
      path: '/api/v1/namespaces',
      log: o.log,
      transform: (n) => ({
        metadata: { name: n.metadata?.name, resourceVersion: n.metadata?.resourceVersion, labels: n.metadata?.labels },
      }),
      onChange: () => this.changed(),
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
      namespaceLabels: (name) => {
        const n = this.namespaces.get(name);
        return n ? (n.metadata?.labels ?? {}) : undefined;
      },
      migrations: o.migrations,
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
    const informers = [this.pods, this.policies, this.namespaces];
    await Promise.all(informers.map((i) => i.start()));
    while (informers.some((i) => !i.hasSynced)) await new Promise((r) => setTimeout(r, 100));
    this.o.metrics.serveStranded(() => this.byNamespaceAndNode());
    this.workers = Array.from({ length: this.o.workers ?? 2 }, () =>
      runWorker(this.queue, (name) => this.reconciler.reconcile(name), this.o.log, 'reclaimPolicy'),
    );
  }

  async stop(): Promise<void> {
    clearTimeout(this.settle);
    this.queue.shutDown();
    await Promise.all([this.pods.stop(), this.policies.stop(), this.namespaces.stop()]);
    await Promise.all(this.workers);
  }

  /** Pods or namespaces changed: every policy looks again, once the changes have settled. */
  private changed(): void {
    if (this.settle) return;
    this.settle = setTimeout(() => {
      this.settle = undefined;
      for (const rp of this.policies.list()) this.queue.add(rp.metadata.name);
    }, SETTLE_MS);
  }
}
