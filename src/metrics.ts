// Prometheus metrics (text format, prom-client). The operator's own figures are prefixed
// podmigration_; reconcile, work-queue and leader-election metrics carry the names
// controller-runtime and client-go give them, and process and Node.js metrics are
// unprefixed, so that the dashboards and alerts written for those work unchanged.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { VERSION } from './version';

/** The controller's name in the controller and name labels, as controller-runtime sets them. */
export const CONTROLLER = 'podmigration';

const QUEUE_BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1000];

export class Metrics {
  readonly registry = new Registry();
  readonly migrations = new Counter({
    name: 'podmigration_migrations_total',
    help: 'Migrations that reached a terminal phase, by result (Completed, Failed, Cancelled) and reason.',
    labelNames: ['result', 'reason'],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'podmigration_migration_duration_seconds',
    help: 'Time from start to a terminal phase, by result.',
    labelNames: ['result'],
    buckets: [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });
  readonly stepDuration = new Histogram({
    name: 'podmigration_step_duration_seconds',
    help: 'Time each step took, by step and outcome (Succeeded, Skipped, Failed).',
    labelNames: ['step', 'state'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly cpuSaved = new Counter({
    name: 'podmigration_cpu_requests_saved_cores_total',
    help: 'CPU requests released by completed migrations (original minus optimized), in cores.',
    registers: [this.registry],
  });
  readonly memorySaved = new Counter({
    name: 'podmigration_memory_requests_saved_bytes_total',
    help: 'Memory requests released by completed migrations (original minus optimized), in bytes.',
    registers: [this.registry],
  });
  readonly devicesSaved = new Counter({
    name: 'podmigration_device_requests_saved_total',
    help: 'Extended resources (resource="nvidia.com/gpu", ...) and DRA devices (resource="devices") released by completed migrations.',
    labelNames: ['resource'],
    registers: [this.registry],
  });
  readonly reclaimedCpu = new Counter({
    name: 'podmigration_reclaimed_cpu_cores_total',
    help: 'CPU requests given back by completed migrations (original minus optimized), in cores, by namespace.',
    labelNames: ['namespace'],
    registers: [this.registry],
  });
  readonly reclaimedMemory = new Counter({
    name: 'podmigration_reclaimed_memory_bytes_total',
    help: 'Memory requests given back by completed migrations (original minus optimized), in bytes, by namespace.',
    labelNames: ['namespace'],
    registers: [this.registry],
  });

  /**
   * The capacity finished containers strand, by namespace and node, read from `source` when
   * scraped (the leader's cache of the cluster's pods; nothing on a standby).
   */
  serveStranded(source: () => Iterable<{ namespace: string; node: string; cpu: number; memory: number; pods: number }>): void {
    const gauge = (name: string, help: string, value: (s: { cpu: number; memory: number; pods: number }) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['namespace', 'node'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const s of source()) this.set({ namespace: s.namespace, node: s.node }, value(s));
        },
      });
    gauge(
      'podmigration_stranded_cpu_cores',
      'CPU requests held for finished containers (what a copy would give back), in cores.',
      (s) => s.cpu,
    );
    gauge(
      'podmigration_stranded_memory_bytes',
      'Memory requests held for finished containers (what a copy would give back), in bytes.',
      (s) => s.memory,
    );
    gauge('podmigration_stranded_pods', 'Running pods that hold requests for finished containers.', (s) => s.pods);
  }

  // controller-runtime (pkg/internal/controller/metrics).
  readonly reconciles = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Total number of reconciliations per controller',
    labelNames: ['controller', 'result'],
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'controller_runtime_reconcile_errors_total',
    help: 'Total number of reconciliation errors per controller',
    labelNames: ['controller'],
    registers: [this.registry],
  });
  readonly reconcileTime = new Histogram({
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Length of time per reconciliation per controller',
    labelNames: ['controller'],
    buckets: [
      0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4,
      4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
    ],
    registers: [this.registry],
  });
  readonly maxConcurrentReconciles = new Gauge({
    name: 'controller_runtime_max_concurrent_reconciles',
    help: 'Maximum number of concurrent reconciles per controller',
    labelNames: ['controller'],
    registers: [this.registry],
  });
  readonly activeWorkers = new Gauge({
    name: 'controller_runtime_active_workers',
    help: 'Number of currently used workers per controller',
    labelNames: ['controller'],
    registers: [this.registry],
  });

  // client-go's work queue (k8s.io/client-go/util/workqueue, as controller-runtime registers it).
  readonly queueAdds = new Counter({
    name: 'workqueue_adds_total',
    help: 'Total number of adds handled by workqueue',
    labelNames: ['controller', 'name'],
    registers: [this.registry],
  });
  readonly queueRetries = new Counter({
    name: 'workqueue_retries_total',
    help: 'Total number of retries handled by workqueue',
    labelNames: ['controller', 'name'],
    registers: [this.registry],
  });
  readonly queueLatency = new Histogram({
    name: 'workqueue_queue_duration_seconds',
    help: 'How long in seconds an item stays in workqueue before being requested',
    labelNames: ['controller', 'name'],
    buckets: QUEUE_BUCKETS,
    registers: [this.registry],
  });
  readonly workDuration = new Histogram({
    name: 'workqueue_work_duration_seconds',
    help: 'How long in seconds processing an item from workqueue takes.',
    labelNames: ['controller', 'name'],
    buckets: QUEUE_BUCKETS,
    registers: [this.registry],
  });

  /** client-go's leader election metric: 1 while this process holds the lease. */
  readonly leader = new Gauge({
    name: 'leader_election_master_status',
    help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.',
    labelNames: ['name'],
    registers: [this.registry],
  });

  constructor(gauges: { inFlight: () => number; queueDepth: () => number; unfinishedWork: () => { seconds: number; longest: number } }) {
    const labels = { controller: CONTROLLER, name: CONTROLLER };
    // Gauges read when scraped.
    const registry = this.registry;
    const observed = (name: string, help: string, value: () => number, withLabels = true) =>
      new Gauge({
        name,
        help,
        labelNames: withLabels ? ['controller', 'name'] : [],
        registers: [registry],
        collect() {
          if (withLabels) this.set(labels, value());
          else this.set(value());
        },
      });
    observed('podmigration_migrations_in_flight', 'Migrations that have not reached a terminal phase.', gauges.inFlight, false);
    observed('workqueue_depth', 'Current depth of workqueue', gauges.queueDepth);
    observed(
      'workqueue_unfinished_work_seconds',
      'How many seconds of work has been done that is in progress and hasn’t been observed by work_duration. Large values indicate stuck threads.',
      () => gauges.unfinishedWork().seconds,
    );
    observed(
      'workqueue_longest_running_processor_seconds',
      'How many seconds has the longest running processor for workqueue been running.',
      () => gauges.unfinishedWork().longest,
    );
    new Gauge({
      name: 'podmigration_build_info',
      help: 'The operator’s version and the Node.js version it runs on (always 1).',
      labelNames: ['version', 'nodejs_version'],
      registers: [this.registry],
    }).set({ version: VERSION, nodejs_version: process.version }, 1);
    this.reconcileErrors.inc({ controller: CONTROLLER }, 0);
    for (const result of ['success', 'error', 'requeue', 'requeue_after']) this.reconciles.inc({ controller: CONTROLLER, result }, 0);
    this.queueAdds.inc(labels, 0);
    this.queueRetries.inc(labels, 0);
    collectDefaultMetrics({ register: this.registry });
  }
}
