// Runs NodeDrains: a watch of them feeds a work queue, and a few workers reconcile them
// (drain/reconciler.ts). A drain in progress is looked at again every DRAIN_POLL_MS; its
// PodMigrations are carried out by the PodMigration controller, within its limits.
import type { Logger } from 'pino';
import type { NodeDrain, PodMigration } from '../api/types';
import type { KubeClient } from '../kube/client';
import { Informer } from '../kube/informer';
import { WorkQueue, runWorker } from '../kube/workqueue';
import type { Environment } from '../migration/context';
import { DrainReconciler, drainPath } from './reconciler';

export interface DrainControllerOptions {
  client: KubeClient;
  log: Logger;
  env: Environment;
  migrations: { get(name: string, namespace?: string): PodMigration | undefined; list(namespace?: string): readonly PodMigration[] };
  /** The one namespace the operator watches, if any. */
  namespace?: string;
  workers?: number;
}

export class DrainController {
  private readonly queue = new WorkQueue();
  private readonly drains: Informer<NodeDrain>;
  private readonly reconciler: DrainReconciler;
  private workers: Promise<void>[] = [];

  constructor(private readonly o: DrainControllerOptions) {
    this.drains = new Informer<NodeDrain>({
      client: o.client,
      path: drainPath(),
      log: o.log,
      onChange: (d) => this.queue.add(d.metadata.name),
    });
    this.reconciler = new DrainReconciler({
      client: o.client,
      drains: { get: (name) => this.drains.get(name), list: () => this.drains.list() },
      migrations: o.migrations,
      env: o.env,
      log: o.log,
      namespace: o.namespace,
    });
  }

  async start(): Promise<void> {
    await this.drains.start();
    while (!this.drains.hasSynced) await new Promise((r) => setTimeout(r, 100));
    this.workers = Array.from({ length: this.o.workers ?? 2 }, () =>
      runWorker(this.queue, (name) => this.reconciler.reconcile(name), this.o.log, 'nodeDrain'),
    );
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await this.drains.stop();
    await Promise.all(this.workers);
  }
}
