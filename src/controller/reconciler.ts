// The reconcile function: read the cached PodMigration, pick the step its phase calls
// for, run it, and write the status (only when it changed). Level-triggered and
// idempotent; everything it needs to resume is in the status.
import { isDeepStrictEqual } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ANNOTATION_CANCEL, FINALIZER, withDefaults, type PodMigration, type PodMigrationStatus } from '../api/types';
import { MigrationFailure, ignoreNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import type { Environment, Fresh, StepContext, UndoResult } from '../migration/context';
import {
  STEP_TABLE,
  advance,
  begin,
  canRollBack,
  completeEarly,
  deadlineFailure,
  fail,
  isTerminal,
  markRunning,
  recordRollback,
  remainingMs,
  setConditions,
  stepIndex,
  waiting,
} from '../migration/status';
import type { Metrics } from '../metrics';
import { modeOf } from '../modes/mode';
import { STEPS, refusal } from '../steps';
import { rollBack } from '../steps/rollback';
import type { EventRecorder } from './events';
import { type InFlight, LIMIT_REASON, holdsSlot } from './inflight';
import { StatusWriter } from './statusWriter';
import { observe, recordEvents } from './transitions';

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
  env: Environment;
  /** Limits on migrations in flight. */
  inFlight: InFlight;
  /** The time (tests inject their own). */
  clock?: () => Date;
}

/** How soon a reconcile whose cache lags behind this operator's own write looks again. */
const CACHE_BEHIND_RETRY_MS = 200;

/** How often a migration waiting for a slot looks again, should no slot's release wake it. */
const SLOT_RECHECK_MS = 30_000;

const notStarted = (status: PodMigrationStatus) => !status.phase || status.phase === 'Pending';

export class Reconciler {
  private readonly writer: StatusWriter;
  private readonly now: () => string;

  constructor(private readonly o: ReconcilerOptions) {
    this.writer = new StatusWriter(o.client);
    const clock = o.clock ?? (() => new Date());
    this.now = () => clock().toISOString();
  }

  /** Converges one migration; returns when to look again (ms), if at a fixed time. */
  async reconcile(key: string): Promise<number | undefined> {
    const [namespace, name] = key.split('/');
    const pm = this.o.migrations.get(name, namespace);
    if (!pm) {
      this.writer.forget(key);
      this.o.inFlight.release(key, true);
      return undefined; // gone: its finalizer already did the cleanup
    }
    // Working from a status this operator has already replaced would only meet a conflict:
    // looked at again in a moment, once the cache shows the newest write.
    if (this.writer.cacheBehind(key, pm.metadata.resourceVersion)) return CACHE_BEHIND_RETRY_MS;
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
    const now = this.now();
    const log = this.o.log.child({ migration: key, phase: status.phase ?? 'Pending', step: status.step ?? 0 });
    const timeoutSeconds = withDefaults(pm.spec).timeoutSeconds;
    let requeueAfterMs: number | undefined;
    let waitingReason: string | undefined;
    let releaseFinalizer = false;
    // What the API server holds, after any write a step asked for midway (persist).
    let stored = before;
    let resourceVersion = pm.metadata.resourceVersion;
    const persist = async () => {
      resourceVersion = await this.writer.status({ ...pm, metadata: { ...pm.metadata, resourceVersion } }, stored, status, log);
      stored = structuredClone(status);
    };
    // The finalizer goes on just before the migration first changes anything (its claim
    // on the source pod), so that deleting the record can undo it; a migration refused in
    // step 1 never needs one.
    let held = !!pm.metadata.finalizers?.includes(FINALIZER);
    const hold = async () => {
      if (held) return;
      resourceVersion = await this.writer.finalizer({ ...pm, metadata: { ...pm.metadata, resourceVersion } }, true);
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
    } else if (pm.metadata.annotations?.[ANNOTATION_CANCEL] === 'true' && modeOf(status, pm.spec).cancellable(status)) {
      fail(status, 'Cancelled', 'CancelRequested', `cancelled by the ${ANNOTATION_CANCEL} annotation`, now);
    } else if (notStarted(status) && !this.admit(pm, status)) {
      // What step 1 can refuse is refused without a slot, the first time the record is seen
      // (its status only the CRD's default).
      const refused = !before.conditions?.length
        ? await refusal(this.context(pm, status, now, log, undefined, { persist, hold, fresh }))
        : undefined;
      if (refused) {
        begin(status, now);
        fail(status, 'Failed', refused.reason, refused.message, now);
      } else {
        waitingReason = LIMIT_REASON;
        requeueAfterMs = SLOT_RECHECK_MS;
      }
    } else {
      if (notStarted(status)) begin(status, now);
      // A step that finishes hands over to the next one at once, in this reconcile: a
      // migration that can move on does not queue again behind every other one, and its
      // status is written once (the steps that must have something on record first
      // persist it themselves). It stops at the first step that waits, or at the end.
      for (let stepNow = now; ; stepNow = this.now()) {
        const pastDeadline = canRollBack(status.phase) && remainingMs(status.startTime, timeoutSeconds, stepNow) <= 0;
        const deadline = pastDeadline ? deadlineFailure(status, timeoutSeconds) : undefined;
        if (deadline && !STEP_TABLE[stepIndex(status.phase)].pastDeadline) {
          fail(status, 'Failed', deadline.reason, deadline.message, stepNow);
          break;
        }
        if (stepIndex(status.phase) > 0) await hold();
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
      resourceVersion = await this.writer.status({ ...pm, metadata: { ...pm.metadata, resourceVersion } }, stored, status, log);
    }
    if (!isDeepStrictEqual(before, status)) {
      log.info({ newPhase: status.phase, newStep: status.step, reason: status.reason, message: status.message }, 'status updated');
      observe(this.o.metrics, pm.metadata.namespace, before, status);
      recordEvents(this.o.events, pm, before, status);
    }
    // Completed just now: nothing is left to undo, so the finalizer goes at once.
    if (status.phase === 'Completed' && !isTerminal(before.phase) && held) releaseFinalizer = true;
    if (releaseFinalizer) {
      const finalizers = [...new Set([...(pm.metadata.finalizers ?? []), ...(held ? [FINALIZER] : [])])];
      await this.writer.finalizer({ ...pm, metadata: { ...pm.metadata, resourceVersion, finalizers } }, false);
    }
    // Its source gone (or ended): the slot serves the next migration at once.
    if (!notStarted(status) && !holdsSlot(status.phase)) this.o.inFlight.release(key, holdsSlot(before.phase));
    // Ended just now with something to undo: the rollback runs next (this operator's own
    // writes do not ask for a reconcile, see ownWrite).
    if (isTerminal(status.phase) && !isTerminal(before.phase) && held && !releaseFinalizer) return 0;
    return requeueAfterMs;
  }

  /**
   * Whether a change to a record is this operator's own status or finalizer write. It asks
   * for no reconcile: the reconcile that wrote it has already said when to look again, and
   * acting on it at once would turn every wait with backoff (a blocked eviction) into a loop.
   */
  ownWrite(key: string, pm: PodMigration): boolean {
    return this.writer.isOwn(key, pm);
  }

  /** Whether a Pending migration may start now; if not, its status says which limit holds it. */
  private admit(pm: PodMigration, status: PodMigrationStatus): boolean {
    const slot = this.o.inFlight.admit(pm);
    if (slot.admitted) return true;
    status.phase = 'Pending';
    status.message = slot.message;
    return false;
  }

  private context(
    pm: PodMigration,
    status: PodMigrationStatus,
    now: string,
    log: Logger,
    deadline: StepContext['deadline'],
    writes: Pick<StepContext, 'persist' | 'hold' | 'fresh'>,
  ): StepContext {
    return {
      migration: pm,
      status,
      client: this.o.client,
      targetPods: this.o.targetPods,
      now,
      log,
      deadline,
      env: this.o.env,
      record: (type, reason, message) => this.o.events.record(pm, type, reason, message),
      ...writes,
    };
  }

  private async runStep(
    pm: PodMigration,
    status: PodMigrationStatus,
    now: string,
    log: Logger,
    deadline: StepContext['deadline'],
    writes: Pick<StepContext, 'persist' | 'hold' | 'fresh'>,
  ): Promise<{ requeueAfterMs?: number; waitingReason?: string }> {
    const step = STEP_TABLE[stepIndex(status.phase)];
    markRunning(status, now);
    const ctx = this.context(pm, status, now, log, deadline, writes);
    // A step's end (and the next one's start) is when its work ended, not when it began.
    const ended = this.now;
    try {
      const outcome = await STEPS[step.name](ctx);
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
    const log = this.o.log.child({
      migration: `${pm.metadata.namespace}/${pm.metadata.name}`,
      phase: phase ?? 'Pending',
      step: pm.status?.step ?? 0,
    });
    if (phase !== 'Completed') {
      const r = await this.rollBack(pm, pm.status ?? {}, log);
      if (!r.done) return r.retryAfterMs ?? 1_000;
      if (r.outcome) log.info({ rolledBack: r.outcome }, 'rolled back');
    }
    await this.writer.finalizer(pm, false);
    log.info('deleted; finalizer released');
    return undefined;
  }

  private rollBack(pm: PodMigration, status: PodMigrationStatus, log: Logger): Promise<UndoResult> {
    return rollBack({
      migration: pm,
      status,
      client: this.o.client,
      env: this.o.env,
      now: this.now(),
      log,
      record: (type, reason, message) => this.o.events.record(pm, type, reason, message),
    });
  }
}
