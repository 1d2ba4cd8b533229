// The reconcile function: read the cached PodMigration, pick the step its phase calls
// for, run it, and write the status (only when it changed). Level-triggered and
// idempotent; everything it needs to resume is in the status.
import { isDeepStrictEqual } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  ANNOTATION_CANCEL,
  ANNOTATION_MIGRATION_UID,
  FINALIZER,
  LABEL_MIGRATION,
  withDefaults,
  type PodMigration,
  type PodMigrationStatus,
} from '../api/types';
import { MigrationFailure, isAlreadyExists, isConflict, isNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import { STEPS } from '../steps';
import type { StepContext } from '../steps/context';
import type { Metrics } from '../metrics';
import { fromFigures } from '../migration/resources';
import type { EventRecorder } from './events';
import {
  STEP_PHASES,
  TOTAL_STEPS,
  advance,
  begin,
  canRollBack,
  fail,
  isTerminal,
  markRunning,
  remainingMs,
  setConditions,
  stepIndex,
  stepTransitions,
  waiting,
} from './status';

export interface Cache<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export interface ReconcilerOptions {
  client: KubeClient;
  migrations: Cache<PodMigration>;
  targetPods: Cache<V1Pod>;
  events: EventRecorder;
  metrics: Metrics;
  log: Logger;
}

export class Reconciler {
  constructor(private readonly o: ReconcilerOptions) {}

  /** Converges one migration; returns when to look again (ms), if at a fixed time. */
  async reconcile(key: string): Promise<number | undefined> {
    const [namespace, name] = key.split('/');
    const pm = this.o.migrations.get(name, namespace);
    if (!pm) return undefined; // gone: its finalizer already did the cleanup
    if (pm.metadata.deletionTimestamp) return this.finalize(pm);
    if (!isTerminal(pm.status?.phase) && !pm.metadata.finalizers?.includes(FINALIZER)) {
      // Before anything is created: deleting the record must be able to clean up.
      await this.setFinalizer(pm, true);
      return undefined;
    }

    const before = pm.status ?? {};
    const status = structuredClone(before);
    const now = new Date().toISOString();
    const log = this.o.log.child({ migration: key, phase: status.phase ?? 'Pending', step: status.step ?? 0 });
    const timeoutSeconds = withDefaults(pm.spec).timeoutSeconds;
    let requeueAfterMs: number | undefined;
    let warning: { reason: string; message: string } | undefined;
    let waitingReason: string | undefined;

    if (isTerminal(status.phase)) {
      // The write that made it terminal triggers this reconcile. The finalizer marks work
      // left: once the rollback is complete it is released, and nothing is asked again.
      if (pm.metadata.finalizers?.includes(FINALIZER)) {
        const clean = status.phase === 'Completed' || (await this.rollBack(pm, status, log));
        if (clean) await this.setFinalizer(pm, false);
        else requeueAfterMs = 1_000;
      }
    } else if (pm.metadata.annotations?.[ANNOTATION_CANCEL] === 'true' && (status.phase === 'Pending' || !status.phase || canRollBack(status.phase))) {
      fail(status, 'Cancelled', 'CancelRequested', `cancelled by the ${ANNOTATION_CANCEL} annotation; the source pod is untouched`, now);
    } else if (!status.phase || status.phase === 'Pending') {
      begin(status, now);
    } else if (canRollBack(status.phase) && remainingMs(status.startTime, timeoutSeconds, now) <= 0) {
      fail(status, 'Failed', 'Timeout', `the migration did not finish within spec.timeoutSeconds (${timeoutSeconds}s); the source pod is untouched`, now);
    } else {
      ({ requeueAfterMs, warning, waitingReason } = await this.runStep(pm, status, now, log));
      if (requeueAfterMs !== undefined && canRollBack(status.phase)) {
        requeueAfterMs = Math.min(requeueAfterMs, remainingMs(status.startTime, timeoutSeconds, now) + 100);
      }
    }
    setConditions(status, pm.metadata.generation, now, waitingReason);

    if (!isDeepStrictEqual(before, status)) {
      await this.writeStatus(pm, before, status, log);
      log.info({ newPhase: status.phase, newStep: status.step, reason: status.reason, message: status.message }, 'status updated');
      this.observe(before, status);
      await this.recordEvents(pm, before, status);
      if (warning) await this.o.events.record(pm, 'Warning', warning.reason, warning.message);
    }
    return requeueAfterMs;
  }

  /**
   * Writes the status with the resourceVersion it was computed from. On a conflict that
   * came from another writer touching only metadata (labels, annotations), the status
   * this was computed from is still current, so the write is retried at once with the
   * fresh resourceVersion; if the status itself moved on, the conflict goes back to the
   * queue and the migration is reconciled afresh.
   */
  private async writeStatus(pm: PodMigration, before: PodMigrationStatus, status: PodMigrationStatus, log: Logger): Promise<void> {
    const { namespace, name } = pm.metadata;
    let resourceVersion = pm.metadata.resourceVersion;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.o.client.replace(paths.migrationStatus(namespace, name), { ...pm, metadata: { ...pm.metadata, resourceVersion }, status });
        return;
      } catch (e) {
        if (!isConflict(e) || attempt >= 5) throw e;
        const fresh = await this.o.client.get<PodMigration>(paths.migration(namespace, name));
        if (!isDeepStrictEqual(fresh.status ?? {}, before)) throw e;
        log.debug({ attempt }, 'status write conflicted with a metadata change; retrying with the fresh resourceVersion');
        resourceVersion = fresh.metadata.resourceVersion;
      }
    }
  }

  private async runStep(
    pm: PodMigration,
    status: PodMigrationStatus,
    now: string,
    log: Logger,
  ): Promise<{ requeueAfterMs?: number; waitingReason?: string; warning?: { reason: string; message: string } }> {
    const i = stepIndex(status.phase);
    markRunning(status, now);
    const ctx: StepContext = {
      migration: pm,
      status,
      client: this.o.client,
      migrations: this.o.migrations,
      targetPods: this.o.targetPods,
      now,
      log,
    };
    try {
      const outcome = await STEPS[i](ctx);
      if (!outcome.done) {
        waiting(status, outcome.message);
        return { requeueAfterMs: outcome.requeueAfterMs, waitingReason: outcome.reason };
      }
      advance(status, now, outcome.message, outcome.skipped);
      return { warning: outcome.warning };
    } catch (e) {
      if (!(e instanceof MigrationFailure)) throw e;
      fail(status, 'Failed', e.reason, e.message, now);
      return {};
    }
  }

  /**
   * The record is being deleted. Before the source pod is removed that cancels the
   * migration: the pods it created go (while the source exists). After that there is
   * nothing to undo. Then the finalizer is released.
   */
  private async finalize(pm: PodMigration): Promise<number | undefined> {
    if (!pm.metadata.finalizers?.includes(FINALIZER)) return undefined;
    const phase = pm.status?.phase;
    const log = this.o.log.child({ migration: `${pm.metadata.namespace}/${pm.metadata.name}`, phase: phase ?? 'Pending', step: pm.status?.step ?? 0 });
    if (phase !== 'Completed' && phase !== 'CollectingMetrics' && !(await this.rollBack(pm, pm.status ?? {}, log))) return 1_000;
    await this.setFinalizer(pm, false);
    log.info('deleted; finalizer released');
    return undefined;
  }

  private async setFinalizer(pm: PodMigration, present: boolean): Promise<void> {
    const current = pm.metadata.finalizers ?? [];
    if (current.includes(FINALIZER) === present) return;
    const finalizers = present ? [...current, FINALIZER] : current.filter((f) => f !== FINALIZER);
    await this.o.client.mergePatch(paths.migration(pm.metadata.namespace, pm.metadata.name), {
      metadata: { finalizers, resourceVersion: pm.metadata.resourceVersion },
    });
  }

  /**
   * Undoes a migration that failed or was cancelled before the source pod was removed
   * for good. Normally that means removing the pods it created, but only while the source
   * pod (same UID) still exists: the workload is never left with no pod. With
   * DeleteBeforeCreate the source is already gone: the copy is removed and, once it is
   * gone, the source is recreated on its node from the manifest captured in step 1.
   * Lists from the API server, not the cache, so a pod created a moment ago is not missed.
   * Returns true when nothing is left to do.
   */
  private async rollBack(pm: PodMigration, status: PodMigrationStatus, log: Logger): Promise<boolean> {
    const { namespace, name, uid } = pm.metadata;
    const list = await this.o.client.get<{ items: V1Pod[] }>(paths.pods(namespace), { labelSelector: `${LABEL_MIGRATION}=${name}` });
    const pods = list.items.filter((p) => p.metadata?.annotations?.[ANNOTATION_MIGRATION_UID] === uid);
    const sourceName = status.sourcePod?.name ?? pm.spec.podName;
    let source: V1Pod | undefined;
    try {
      source = await this.o.client.get<V1Pod>(paths.pod(namespace, sourceName));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    const sourceMoved = status.steps?.find((s) => s.name === 'DeleteSourcePod')?.state === 'Succeeded';
    const restore = status.sourcePodManifest && !sourceMoved ? status.sourcePodManifest : undefined;
    if (status.sourcePod && source?.metadata?.uid !== status.sourcePod.uid && !restore) {
      if (pods.length > 0) log.warn({ targets: pods.map((p) => p.metadata?.name) }, 'source pod is gone; keeping the target pod so the workload keeps running');
      return true;
    }
    for (const p of pods) {
      if (p.metadata?.deletionTimestamp) continue;
      try {
        await this.o.client.delete(paths.pod(namespace, p.metadata!.name!), {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          preconditions: { uid: p.metadata!.uid },
        });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      log.info({ pod: p.metadata!.name }, 'removed target pod');
      await this.o.events.record(pm, 'Normal', 'TargetPodRemoved', `removed pod ${p.metadata!.name}`);
    }
    if (!restore || source) {
      // Nothing to recreate, or the source is still (or again) there; a terminating one is
      // waited for so the new one can take its name.
      return !(restore && source?.metadata?.deletionTimestamp);
    }
    if (pods.length > 0) return false; // recreate the source once its copy is gone (ReadWriteOnce claims)
    try {
      await this.o.client.create(paths.pods(namespace), restore);
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
    log.info({ pod: sourceName, node: restore.spec?.nodeName }, 'recreated the source pod');
    await this.o.events.record(pm, 'Normal', 'SourcePodRestored', `recreated pod ${sourceName} on ${restore.spec?.nodeName} from the spec captured in step 1`);
    return true;
  }


  /** Metrics for what this status write recorded: steps that ended, a migration that ended. */
  private observe(before: PodMigrationStatus, after: PodMigrationStatus): void {
    const m = this.o.metrics;
    for (const s of stepTransitions(before, after)) {
      if (s.startTime && s.completionTime && s.state !== 'Running') {
        m.stepDuration.observe({ step: s.name, state: s.state }, (Date.parse(s.completionTime) - Date.parse(s.startTime)) / 1000);
      }
    }
    if (after.phase === before.phase || !isTerminal(after.phase)) return;
    m.migrations.inc({ result: after.phase, reason: after.reason ?? '' });
    m.duration.observe({ result: after.phase! }, after.durationSeconds ?? 0);
    const { original, optimized } = after.resources ?? {};
    if (after.phase === 'Completed' && original && optimized) {
      const o = fromFigures(original);
      const n = fromFigures(optimized);
      m.cpuSaved.inc(Math.max(o.cpu - n.cpu, 0));
      m.memorySaved.inc(Math.max(o.memory - n.memory, 0));
    }
  }

  private async recordEvents(pm: PodMigration, before: PodMigrationStatus, after: PodMigrationStatus): Promise<void> {
    for (const s of stepTransitions(before, after)) {
      const n = STEP_PHASES.findIndex((p) => p.name === s.name) + 1;
      const label = `step ${n}/${TOTAL_STEPS} ${s.name}`;
      switch (s.state) {
        case 'Running':
          await this.o.events.record(pm, 'Normal', 'StepStarted', `${label} started`);
          break;
        case 'Succeeded':
          await this.o.events.record(pm, 'Normal', 'StepSucceeded', `${label} succeeded: ${s.message ?? ''}`);
          break;
        case 'Skipped':
          await this.o.events.record(pm, 'Normal', 'StepSkipped', `${label} skipped: ${s.message ?? ''}`);
          break;
        case 'Failed':
          await this.o.events.record(pm, 'Warning', 'StepFailed', `${label} failed: ${s.message ?? ''}`);
          break;
      }
    }
    if (after.phase === before.phase) return;
    if (after.phase === 'Completed') {
      await this.o.events.record(pm, 'Normal', 'MigrationCompleted', after.message ?? 'completed');
    } else if (after.phase === 'Failed' || after.phase === 'Cancelled') {
      await this.o.events.record(pm, 'Warning', after.reason ?? after.phase, after.message ?? after.phase);
    }
  }
}
