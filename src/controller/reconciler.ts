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
import { MigrationFailure, ignoreNotFound, isAlreadyExists, isConflict, isNamespaceTerminating, isRefusal } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import { STEPS } from '../steps';
import type { Fresh, StepContext } from '../steps/context';
import type { Metrics } from '../metrics';
import { describePod } from '../migration/podState';
import { fromFigures } from '../migration/resources';
import { claimedBy, releaseClaim } from '../steps/claim';
import type { EventRecorder } from './events';
import { type InFlight, LIMIT_REASON } from './inflight';
import {
  STEP_PHASES,
  TOTAL_STEPS,
  advance,
  begin,
  canRollBack,
  completeEarly,
  type RollbackOutcome,
  deadlineFailure,
  fail,
  isTerminal,
  markRunning,
  recordRollback,
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
  /** The admission webhook runs (Steer mode is available). */
  steering: boolean;
  /** Limits on migrations in flight. */
  inFlight: InFlight;
}

/** How often a migration waiting for a slot looks again, should no slot's release wake it. */
const SLOT_RECHECK_MS = 30_000;

/** How long a refused recreation of the source pod (DeleteBeforeCreate rollback) is retried. */
const RESTORE_RETRY_MS = 30_000;

/**
 * A cancellation is honoured until step 4 has asked to evict the source (from then on the
 * workload may already have moved); it rolls back as a failure does.
 */
function cancellable(status: PodMigrationStatus): boolean {
  if (!status.phase || status.phase === 'Pending') return true;
  return canRollBack(status.phase) && !(status.phase === 'DeletingSourcePod' && status.sourcePod?.evictionRequestedAt);
}

export class Reconciler {
  /**
   * The resourceVersions this operator wrote to a record (oldest first), until the cache
   * shows the newest. A reconcile is asked for by the watch event of each write; one whose
   * cached record is an earlier write of ours would work from a status already replaced
   * (and meet a conflict): it is skipped, since the newest write's event is on its way.
   */
  private readonly written = new Map<string, string[]>();

  constructor(private readonly o: ReconcilerOptions) {}

  private cacheBehind(key: string, resourceVersion: string | undefined): boolean {
    const mine = this.written.get(key);
    if (!mine) return false;
    const i = resourceVersion ? mine.indexOf(resourceVersion) : -1;
    if (i >= 0 && i < mine.length - 1) return true;
    this.written.delete(key); // caught up, or someone else wrote since
    return false;
  }

  private wrote(pm: PodMigration, resourceVersion: string | undefined): string | undefined {
    if (!resourceVersion) return resourceVersion;
    const key = `${pm.metadata.namespace}/${pm.metadata.name}`;
    const mine = this.written.get(key) ?? [];
    mine.push(resourceVersion);
    this.written.set(key, mine.slice(-8));
    return resourceVersion;
  }

  /** Converges one migration; returns when to look again (ms), if at a fixed time. */
  async reconcile(key: string): Promise<number | undefined> {
    const [namespace, name] = key.split('/');
    const pm = this.o.migrations.get(name, namespace);
    if (!pm) {
      this.written.delete(key);
      this.o.inFlight.release(key, true);
      return undefined; // gone: its finalizer already did the cleanup
    }
    if (this.cacheBehind(key, pm.metadata.resourceVersion)) return undefined;
    if (pm.metadata.deletionTimestamp) {
      this.o.inFlight.release(key, true);
      return this.finalize(pm);
    }
    if (isTerminal(pm.status?.phase) && !pm.metadata.finalizers?.includes(FINALIZER)) {
      // Ended, and nothing left to undo: never acted on again (the cache keeps only a
      // summary of its status, and its spec cannot change).
      this.o.inFlight.release(key, false);
      return undefined;
    }
    const before = pm.status ?? {};
    const status = structuredClone(before);
    const now = new Date().toISOString();
    const log = this.o.log.child({ migration: key, phase: status.phase ?? 'Pending', step: status.step ?? 0 });
    const timeoutSeconds = withDefaults(pm.spec).timeoutSeconds;
    let requeueAfterMs: number | undefined;
    let waitingReason: string | undefined;
    let releaseFinalizer = false;
    // What the API server holds, after any write a step asked for midway (persist).
    let stored = before;
    let resourceVersion = pm.metadata.resourceVersion;
    const persist = async () => {
      resourceVersion = await this.writeStatus({ ...pm, metadata: { ...pm.metadata, resourceVersion } }, stored, status, log);
      stored = structuredClone(status);
    };
    // The finalizer goes on just before the migration first changes anything (its claim
    // on the source pod), so that deleting the record can undo it; a migration refused in
    // step 1 never needs one.
    let held = !!pm.metadata.finalizers?.includes(FINALIZER);
    const hold = async () => {
      if (held) return;
      resourceVersion = await this.setFinalizer({ ...pm, metadata: { ...pm.metadata, resourceVersion } }, true);
      held = true;
    };
    const fresh: Fresh = {};

    if (isTerminal(status.phase)) {
      // The write that made it terminal triggers this reconcile. The finalizer marks work
      // left: once the rollback is complete, what it left is recorded (RolledBack) and the
      // finalizer released, and nothing is asked again.
      if (pm.metadata.finalizers?.includes(FINALIZER)) {
        const r = status.phase === 'Completed' ? { done: true as const } : await this.rollBack(pm, status, log);
        if (!r.done) requeueAfterMs = r.retryAfterMs ?? 1_000;
        else {
          if (r.outcome) recordRollback(status, r.outcome, pm.metadata.generation, now);
          releaseFinalizer = true;
        }
      }
    } else if (pm.metadata.annotations?.[ANNOTATION_CANCEL] === 'true' && cancellable(status)) {
      fail(status, 'Cancelled', 'CancelRequested', `cancelled by the ${ANNOTATION_CANCEL} annotation`, now);
    } else if ((!status.phase || status.phase === 'Pending') && !this.admit(pm, status)) {
      waitingReason = LIMIT_REASON;
      requeueAfterMs = SLOT_RECHECK_MS;
    } else {
      if (!status.phase || status.phase === 'Pending') begin(status, now);
      // A step that finishes hands over to the next one at once, in this reconcile: a
      // migration that can move on does not queue again behind every other one, and its
      // status is written once (the steps that must have something on record first
      // persist it themselves). It stops at the first step that waits, or at the end.
      for (let stepNow = now; ; stepNow = new Date().toISOString()) {
        const pastDeadline = canRollBack(status.phase) && remainingMs(status.startTime, timeoutSeconds, stepNow) <= 0;
        const deadline = pastDeadline ? deadlineFailure(status, timeoutSeconds) : undefined;
        if (deadline && status.phase !== 'DeletingSourcePod') {
          fail(status, 'Failed', deadline.reason, deadline.message, stepNow);
          break;
        }
        if (stepIndex(status.phase) > 0) await hold();
        // Step 4 runs even past the deadline: it looks at the pods before giving up.
        ({ requeueAfterMs, waitingReason } = await this.runStep(pm, status, stepNow, log, deadline, { persist, hold, fresh }));
        if (requeueAfterMs !== undefined) {
          if (canRollBack(status.phase)) {
            requeueAfterMs = Math.min(requeueAfterMs, Math.max(remainingMs(status.startTime, timeoutSeconds, stepNow), 0) + 100);
          }
          break;
        }
        if (stepIndex(status.phase) < 0) break; // ended
      }
    }
    setConditions(status, pm.metadata.generation, now, waitingReason);

    if (!isDeepStrictEqual(stored, status)) {
      resourceVersion = await this.writeStatus({ ...pm, metadata: { ...pm.metadata, resourceVersion } }, stored, status, log);
    }
    if (!isDeepStrictEqual(before, status)) {
      log.info({ newPhase: status.phase, newStep: status.step, reason: status.reason, message: status.message }, 'status updated');
      this.observe(before, status);
      this.recordEvents(pm, before, status);
    }
    // Completed just now: nothing is left to undo, so the finalizer goes at once.
    if (status.phase === 'Completed' && !isTerminal(before.phase) && held) releaseFinalizer = true;
    if (releaseFinalizer) {
      const finalizers = [...new Set([...(pm.metadata.finalizers ?? []), ...(held ? [FINALIZER] : [])])];
      await this.setFinalizer({ ...pm, metadata: { ...pm.metadata, resourceVersion, finalizers } }, false);
    }
    if (isTerminal(status.phase)) this.o.inFlight.release(key, !isTerminal(before.phase));
    return requeueAfterMs;
  }

  /** Whether a Pending migration may start now; if not, its status says which limit holds it. */
  private admit(pm: PodMigration, status: PodMigrationStatus): boolean {
    const slot = this.o.inFlight.admit(pm);
    if (slot.admitted) return true;
    status.phase = 'Pending';
    status.message = slot.message;
    return false;
  }

  /**
   * Writes the status with the resourceVersion it was computed from. On a conflict that
   * came from another writer touching only metadata (labels, annotations), the status
   * this was computed from is still current, so the write is retried at once with the
   * fresh resourceVersion; if the status itself moved on, the conflict goes back to the
   * queue and the migration is reconciled afresh.
   */
  private async writeStatus(pm: PodMigration, before: PodMigrationStatus, status: PodMigrationStatus, log: Logger): Promise<string | undefined> {
    const { namespace, name } = pm.metadata;
    let resourceVersion = pm.metadata.resourceVersion;
    for (let attempt = 1; ; attempt++) {
      try {
        const written = await this.o.client.replace(paths.migrationStatus(namespace, name), { ...pm, metadata: { ...pm.metadata, resourceVersion }, status });
        return this.wrote(pm, written.metadata.resourceVersion);
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
    deadline: { reason: string; message: string } | undefined,
    writes: Pick<StepContext, 'persist' | 'hold' | 'fresh'>,
  ): Promise<{ requeueAfterMs?: number; waitingReason?: string }> {
    const i = stepIndex(status.phase);
    markRunning(status, now);
    const ctx: StepContext = {
      migration: pm,
      status,
      client: this.o.client,
      targetPods: this.o.targetPods,
      now,
      log,
      deadline,
      steering: this.o.steering,
      ...writes,
    };
    // A step's end (and the next one's start) is when its work ended, not when it began.
    const ended = () => new Date().toISOString();
    try {
      const outcome = await STEPS[i](ctx);
      if (!outcome.done) {
        waiting(status, outcome.message);
        return { requeueAfterMs: outcome.requeueAfterMs, waitingReason: outcome.reason };
      }
      if (outcome.finished) completeEarly(status, ended(), outcome.message, outcome.finished.reason);
      else advance(status, ended(), outcome.message, outcome.skipped);
      return {};
    } catch (e) {
      if (!(e instanceof MigrationFailure)) throw e;
      fail(status, 'Failed', e.reason, e.message, ended());
      return {};
    }
  }

  /**
   * The record is being deleted. Before the source pod is removed that cancels the
   * migration: the pods it made go (while the source runs). After that there is nothing
   * to undo. Then the finalizer is released. Decided from the record as the API server
   * holds it now, not from the cache, which may lag behind this operator's last write.
   */
  private async finalize(cached: PodMigration): Promise<number | undefined> {
    if (!cached.metadata.finalizers?.includes(FINALIZER)) return undefined;
    const pm = await ignoreNotFound(this.o.client.get<PodMigration>(paths.migration(cached.metadata.namespace, cached.metadata.name)));
    if (!pm?.metadata.finalizers?.includes(FINALIZER)) return undefined;
    const phase = pm.status?.phase;
    const log = this.o.log.child({ migration: `${pm.metadata.namespace}/${pm.metadata.name}`, phase: phase ?? 'Pending', step: pm.status?.step ?? 0 });
    if (phase !== 'Completed') {
      const r = await this.rollBack(pm, pm.status ?? {}, log);
      if (!r.done) return r.retryAfterMs ?? 1_000;
      if (r.outcome) log.info({ rolledBack: r.outcome }, 'rolled back');
    }
    await this.setFinalizer(pm, false);
    log.info('deleted; finalizer released');
    return undefined;
  }

  /** Adds or removes the finalizer; returns the record's new resourceVersion. */
  private async setFinalizer(pm: PodMigration, present: boolean): Promise<string | undefined> {
    const current = pm.metadata.finalizers ?? [];
    if (current.includes(FINALIZER) === present) return pm.metadata.resourceVersion;
    const finalizers = present ? [...current, FINALIZER] : current.filter((f) => f !== FINALIZER);
    const written = await this.o.client.mergePatch<PodMigration>(paths.migration(pm.metadata.namespace, pm.metadata.name), {
      metadata: { finalizers, resourceVersion: pm.metadata.resourceVersion },
    });
    return this.wrote(pm, written.metadata.resourceVersion);
  }

  /**
   * Undoes a migration that failed or was cancelled, as far as that is safe, and says what
   * it left. The pods it made are removed only while the source pod (same UID) runs and is
   * not being deleted: otherwise the copy may be all that is left of the workload, and is
   * kept. With DeleteBeforeCreate, before the source was evicted for good, the copy is
   * removed and, once it is gone, the source is recreated on its node from the manifest
   * captured in step 1 (not in a namespace being deleted; a refusal is reported, not retried
   * forever). Lists from the API server, not the cache, so a pod made a moment ago is not
   * missed.
   */
  private async rollBack(pm: PodMigration, status: PodMigrationStatus, log: Logger): Promise<{ done: false; retryAfterMs?: number } | { done: true; outcome?: RollbackOutcome }> {
    const { namespace, name, uid } = pm.metadata;
    const list = await this.o.client.get<{ items: V1Pod[] }>(paths.pods(namespace), { labelSelector: `${LABEL_MIGRATION}=${name}` });
    const pods = list.items.filter((p) => p.metadata?.annotations?.[ANNOTATION_MIGRATION_UID] === uid);
    /** The pods made are kept (the source is not there to fall back to), and why. */
    const keep = (why: string): { done: true; outcome: RollbackOutcome } => {
      const kept = pods.map((p) => `${p.metadata!.name} on ${p.spec?.nodeName ?? 'no node'} (${describePod(p)})`).join(', ');
      const message = `kept ${kept}: ${why}`;
      log.warn({ targets: pods.map((p) => p.metadata?.name) }, message);
      this.o.events.record(pm, 'Warning', 'TargetPodKept', message);
      return { done: true, outcome: { ok: false, reason: 'TargetPodKept', message } };
    };
    // Not on record (an operator was killed between its copy and the status write that
    // follows): the claim names the source.
    const ref = status.sourcePod ?? (await this.claimedSource(pm));
    if (!ref) {
      if (pods.length === 0) return { done: true }; // ended in step 1: nothing was made or claimed
      return keep(`pod ${pm.spec.podName} no longer carries this migration's claim, so the copy may be all that is left of the workload; delete it when it is no longer needed`);
    }
    const found = await ignoreNotFound(this.o.client.get<V1Pod>(paths.pod(namespace, ref.name)));
    const source = found?.metadata?.uid === ref.uid ? found : undefined;
    const sourceRuns = !!source && !source.metadata?.deletionTimestamp;
    const sourceMoved = status.steps?.find((s) => s.name === 'DeleteSourcePod')?.state === 'Succeeded';
    const restore = status.sourcePodManifest && !sourceMoved && !sourceRuns ? status.sourcePodManifest : undefined;

    if (!sourceRuns && !restore) {
      const state = source ? 'is being deleted' : found ? 'was replaced by another pod of that name' : 'is gone';
      if (pods.length === 0) {
        return { done: true, outcome: { ok: false, reason: 'NoPodLeft', message: `source pod ${ref.name} ${state} and this migration has no pod left` } };
      }
      const owner = status.steer?.owner;
      return keep(
        owner
          ? `source pod ${ref.name} ${state}, and ${owner.kind} ${owner.name} owns its replacement`
          : `source pod ${ref.name} ${state}, so it is all that is left of the workload; delete it when it is no longer needed`,
      );
    }

    for (const p of pods) {
      if (p.metadata?.deletionTimestamp) continue;
      await ignoreNotFound(
        this.o.client.delete(paths.pod(namespace, p.metadata!.name!), { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: p.metadata!.uid } }),
      );
      log.info({ pod: p.metadata!.name }, 'removed target pod');
      this.o.events.record(pm, 'Normal', 'TargetPodRemoved', `removed pod ${p.metadata!.name}`);
    }
    const removed = pods.length > 0 ? `removed pod ${pods.map((p) => p.metadata!.name).join(', ')}; ` : '';
    if (sourceRuns) {
      await releaseClaim(this.o.client, pm, source!);
      return { done: true, outcome: { ok: true, reason: 'SourcePodRunning', message: `${removed}source pod ${ref.name} still runs on ${source!.spec?.nodeName}` } };
    }
    // DeleteBeforeCreate: recreate the source once it and its copy are gone (ReadWriteOnce claims).
    if (source || pods.length > 0) return { done: false };
    try {
      await this.o.client.create(paths.pods(namespace), restore);
    } catch (e) {
      if (isNamespaceTerminating(e)) {
        return { done: true, outcome: { ok: false, reason: 'NamespaceTerminating', message: `${removed}source pod ${ref.name} not recreated: namespace ${namespace} is being deleted` } };
      }
      if (isRefusal(e)) {
        // Refused (quota, Pod Security, a webhook): asked again for a while, since a quota
        // may free up, then reported and let go, so the record can be deleted.
        const message =
          `${removed}could not recreate source pod ${ref.name}: ${(e as Error).message}; its manifest is kept in ` +
          `status.sourcePodManifest (kubectl get podmigration ${name} -n ${namespace} -o jsonpath='{.status.sourcePodManifest}' | kubectl create -f -)`;
        log.error({ pod: ref.name, err: (e as Error).message }, 'could not recreate the source pod');
        this.o.events.record(pm, 'Warning', 'SourcePodNotRestored', message);
        const failedForMs = Date.now() - Date.parse(status.completionTime ?? new Date().toISOString());
        if (failedForMs < RESTORE_RETRY_MS) return { done: false, retryAfterMs: RESTORE_RETRY_MS / 6 };
        return { done: true, outcome: { ok: false, reason: 'SourcePodNotRestored', message } };
      }
      if (!isAlreadyExists(e)) throw e;
    }
    const node = restore!.spec?.nodeName;
    log.info({ pod: ref.name, node }, 'recreated the source pod');
    this.o.events.record(pm, 'Normal', 'SourcePodRestored', `recreated pod ${ref.name} on ${node} from the spec captured in step 1`);
    return { done: true, outcome: { ok: true, reason: 'SourcePodRestored', message: `${removed}recreated source pod ${ref.name} on ${node}` } };
  }

  /** The source pod as this migration's claim names it, if the claim is on spec.podName. */
  private async claimedSource(pm: PodMigration): Promise<PodMigrationStatus['sourcePod']> {
    const pod = await ignoreNotFound(this.o.client.get<V1Pod>(paths.pod(pm.metadata.namespace, pm.spec.podName)));
    if (!pod || !claimedBy(pod, pm)) return undefined;
    return { name: pod.metadata!.name!, uid: pod.metadata!.uid!, node: pod.spec?.nodeName ?? '' };
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

  /**
   * One Event per step as it ends (when it started is in status.steps): few enough that
   * kubectl describe, which sorts by whole seconds, keeps them in their (name) order. The
   * step that ends the migration and the migration's end are one Event, with the
   * migration's reason.
   */
  private recordEvents(pm: PodMigration, before: PodMigrationStatus, after: PodMigrationStatus): void {
    const events: { type: 'Normal' | 'Warning'; reason: string; note: string; failed: boolean }[] = [];
    for (const s of stepTransitions(before, after)) {
      if (s.state !== 'Succeeded' && s.state !== 'Skipped' && s.state !== 'Failed') continue;
      const n = STEP_PHASES.findIndex((p) => p.name === s.name) + 1;
      const verb = s.state === 'Failed' && after.phase === 'Cancelled' ? 'cancelled' : s.state.toLowerCase();
      const failed = s.state === 'Failed';
      events.push({ type: failed ? 'Warning' : 'Normal', reason: `Step${s.state}`, note: `step ${n}/${TOTAL_STEPS} ${s.name} ${verb}: ${s.message ?? ''}`, failed });
    }
    if (after.phase !== before.phase && isTerminal(after.phase)) {
      const completed = after.phase === 'Completed';
      const end = { type: completed ? ('Normal' as const) : ('Warning' as const), reason: completed ? 'MigrationCompleted' : (after.reason ?? after.phase!) };
      const last = events.at(-1);
      if (last && last.failed !== completed) Object.assign(last, end);
      else events.push({ ...end, note: after.message ?? after.phase!, failed: !completed });
    }
    for (const e of events) this.o.events.record(pm, e.type, e.reason, e.note);
  }
}
