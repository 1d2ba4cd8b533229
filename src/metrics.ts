// Prometheus metrics (text format, prom-client).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
  readonly reconcileErrors = new Counter({
    name: 'podmigration_reconcile_errors_total',
    help: 'Reconciles that failed and were retried with backoff (API errors, conflicts).',
    registers: [this.registry],
  });

  constructor(gauges: { inFlight: () => number; queueDepth: () => number }) {
    new Gauge({
      name: 'podmigration_migrations_in_flight',
      help: 'Migrations that have not reached a terminal phase.',
      registers: [this.registry],
      collect() {
        this.set(gauges.inFlight());
      },
    });
    new Gauge({
      name: 'podmigration_workqueue_depth',
      help: 'Keys waiting in the work queue.',
      registers: [this.registry],
      collect() {
        this.set(gauges.queueDepth());
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'podmigration_' });
  }
}
