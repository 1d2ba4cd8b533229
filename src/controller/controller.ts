// Wires the informers to the work queue and runs a bounded number of workers, each of
// which takes a key (namespace/name) and reconciles it. Event handlers only enqueue.
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LABEL_MIGRATION, type PodMigration } from '../api/types';
import type { Environment } from '../migration/context';
import { isConflict } from '../errors';
import { KubeClient, paths } from '../kube/client';
import type { KubeConfig } from '../kube/config';
import { Informer } from '../kube/informer';
import { trimMigration, trimPod } from '../kube/trim';
import { EventRecorder } from './events';
import { DEFAULT_LIMITS, InFlight, type Limits } from './inflight';
import { CONTROLLER, Metrics } from '../metrics';
import { Reconciler } from './reconciler';
import { isTerminal } from '../migration/status';
import { WorkQueue } from '../kube/workqueue';

const notStarted = (m: PodMigration) => (!m.status?.phase || m.status.phase === 'Pending') && !m.metadata.deletionTimestamp;

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** Namespace to watch; all when undefined. */
  namespace?: string;
  /** Migrations reconciled at the same time. */
  workers: number;
  /** Identifies this process in Events. */
  instance: string;
  /** What steps need to know of how the operator runs (the webhook, the owners trusted in Steer mode). */
  env: Environment;
  /** Limits on migrations in flight (defaults: DEFAULT_LIMITS). */
  limits?: Limits;
}

export class Controller {
  readonly queue: WorkQueue;
  private readonly migrations: Informer<PodMigration>;
  private readonly targetPods: Informer<V1Pod>;
  private readonly reconciler: Reconciler;
  private readonly events: EventRecorder;
  readonly metrics: Metrics;
  private readonly log: Logger;
  private workers: Promise<void>[] = [];
  private running = false;
  private cachesStarted = false;

  constructor(private readonly o: ControllerOptions) {
    this.log = o.log;
    const labels = { controller: CONTROLLER, name: CONTROLLER };
    // Set below; the queue reports to it from its first add.
    let metrics: Metrics | undefined;
    this.queue = new WorkQueue({
      observer: {
        added: () => metrics?.queueAdds.inc(labels),
        retried: () => metrics?.queueRetries.inc(labels),
        waited: (s) => metrics?.queueLatency.observe(labels, s),
        worked: (s) => metrics?.workDuration.observe(labels, s),
      },
    });
    const client = new KubeClient(o.kubeConfig);
    const ns = o.namespace;
    this.migrations = new Informer<PodMigration>({
      client,
      path: paths.migrations(ns),
      log: o.log,
      transform: trimMigration,
      // A record not started yet waits behind work on migrations in flight.
      onChange: (obj) => {
        const key = `${obj.metadata.namespace}/${obj.metadata.name}`;
        if (!obj.metadata.deletionTimestamp && this.reconciler.ownWrite(key, obj)) return;
        this.queue.add(key, notStarted(obj) ? 'later' : 'first');
      },
    });
    this.targetPods = new Informer({
      client,
      path: paths.pods(ns),
      labelSelector: LABEL_MIGRATION,
      log: o.log,
      transform: trimPod,
      // A pod maps back to the migration named by its label, in its own namespace.
      onChange: (obj) => this.queue.add(`${obj.metadata!.namespace}/${obj.metadata!.labels![LABEL_MIGRATION]}`),
    });
    this.metrics = metrics = new Metrics({
      inFlight: () => this.migrations.list().filter((m) => !isTerminal(m.status?.phase)).length,
      queueDepth: () => this.queue.length,
      unfinishedWork: () => this.queue.unfinishedWork(),
    });
    this.metrics.maxConcurrentReconciles.set({ controller: CONTROLLER }, o.workers);
    this.metrics.activeWorkers.set({ controller: CONTROLLER }, 0);
    this.events = new EventRecorder(client, o.log, o.instance);
    this.reconciler = new Reconciler({
      metrics: this.metrics,
      client,
      migrations: this.migrations,
      targetPods: this.targetPods,
      events: this.events,
      log: o.log,
      env: o.env,
      inFlight: new InFlight(o.limits ?? DEFAULT_LIMITS, this.migrations, (key) => this.queue.add(key)),
    });
  }

  /** The PodMigrations as the watch last saw them (trimmed: see kube/trim.ts). */
  get cachedMigrations(): {
    get(name: string, namespace?: string): PodMigration | undefined;
    list(namespace?: string): readonly PodMigration[];
  } {
    return this.migrations;
  }

  /**
   * Starts the informers (once) and waits until both caches have synced. Every replica
   * keeps them, leader or not: the admission webhook answers from them.
   */
  async startCaches(): Promise<void> {
    if (!this.cachesStarted) {
      this.cachesStarted = true;
      this.running = true;
      await Promise.all([this.targetPods.start(), this.migrations.start()]);
    }
    while (this.running && !this.hasSynced) await new Promise((r) => setTimeout(r, 100));
  }

  /** Starts the informers and, once both caches have synced, the workers. */
  async start(): Promise<void> {
    await this.startCaches();
    if (!this.running) return;
    this.log.info({ workers: this.o.workers, namespace: this.o.namespace ?? '(all)' }, 'caches synced; starting workers');
    this.workers = Array.from({ length: this.o.workers }, () => this.work());
  }

  get hasSynced(): boolean {
    return this.migrations.hasSynced && this.targetPods.hasSynced;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.queue.shutDown();
    await Promise.all([this.migrations.stop(), this.targetPods.stop()]);
    await Promise.all(this.workers);
    await this.events.flush();
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const c = { controller: CONTROLLER };
      this.metrics.activeWorkers.inc(c);
      const endTimer = this.metrics.reconcileTime.startTimer(c);
      try {
        const after = await this.reconciler.reconcile(key);
        this.queue.forget(key);
        if (after !== undefined) this.queue.addAfter(key, after);
        this.metrics.reconciles.inc({ ...c, result: after !== undefined ? 'requeue_after' : 'success' });
      } catch (e) {
        const retryInMs = this.queue.addRateLimited(key);
        this.metrics.reconciles.inc({ ...c, result: 'error' });
        this.metrics.reconcileErrors.inc(c);
        const level = isConflict(e) ? 'debug' : 'error';
        const [ns, name] = key.split('/');
        const status = this.migrations.get(name, ns)?.status;
        this.log[level](
          {
            migration: key,
            phase: status?.phase ?? 'Pending',
            step: status?.step ?? 0,
            err: e instanceof Error ? e.message : String(e),
            retryInMs,
          },
          'reconcile failed; retrying',
        );
      } finally {
        endTimer();
        this.metrics.activeWorkers.dec(c);
        this.queue.done(key);
      }
    }
  }
}
