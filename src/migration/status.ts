// Phase transitions and conditions of a PodMigration's status. Pure functions: they take
// the status and "now" and return or change the status, nothing else.
import type { EndReason, FailureReason, RollbackReason } from '../api/reasons';
import { WAITING_REASONS } from '../api/reasons';
import type { Condition, Phase, PodMigrationStatus, StepStatus } from '../api/types';
import { TERMINAL_PHASES } from '../api/types';

/**
 * The five steps in order, with the phase each one runs in. `pastDeadline`: the step runs
 * even once spec.timeoutSeconds has passed (it looks at the pods before giving up, since
 * the workload may have moved already); any other step fails at the deadline.
 */
export const STEP_TABLE = [
  { name: 'CaptureState', phase: 'CapturingState', pastDeadline: false },
  { name: 'Checkpoint', phase: 'Checkpointing', pastDeadline: false },
  { name: 'CreateTargetPod', phase: 'CreatingTargetPod', pastDeadline: false },
  { name: 'DeleteSourcePod', phase: 'DeletingSourcePod', pastDeadline: true },
  { name: 'CollectMetrics', phase: 'CollectingMetrics', pastDeadline: false },
] as const satisfies readonly { name: string; phase: Phase; pastDeadline: boolean }[];

export type StepName = (typeof STEP_TABLE)[number]['name'];

export const TOTAL_STEPS = STEP_TABLE.length;

export const isTerminal = (phase: Phase | undefined): boolean => !!phase && TERMINAL_PHASES.includes(phase);

/** Index (0-based) of the step that runs in `phase`, or -1 outside the steps. */
export function stepIndex(phase: Phase | undefined): number {
  return STEP_TABLE.findIndex((s) => s.phase === phase);
}

/**
 * Until the source pod is removed (step 4) nothing of the user's has been touched, so a
 * failure or a timeout can roll back.
 */
export function canRollBack(phase: Phase | undefined): boolean {
  const i = stepIndex(phase);
  return i >= 0 && i <= stepIndex('DeletingSourcePod');
}

function setStep(status: PodMigrationStatus, index: number): void {
  status.step = index + 1;
  status.progress = `${index + 1}/${TOTAL_STEPS}`;
}

/** Pending -> CapturingState: the clock starts. */
export function begin(status: PodMigrationStatus, now: string): void {
  status.phase = STEP_TABLE[0].phase;
  status.startTime = now;
  status.steps = STEP_TABLE.map((s): StepStatus => ({ name: s.name, state: 'Pending' }));
  status.message = 'migration started';
  delete status.reason;
  setStep(status, 0);
  markRunning(status, now);
}

/** The current step's entry becomes Running (once). */
export function markRunning(status: PodMigrationStatus, now: string): void {
  const i = stepIndex(status.phase);
  const entry = status.steps?.[i];
  if (entry && entry.state === 'Pending') {
    entry.state = 'Running';
    entry.startTime = now;
  }
}

/** The current step is done (or skipped); the next one starts, or the migration completes. */
export function advance(status: PodMigrationStatus, now: string, message: string, skipped = false): void {
  const i = stepIndex(status.phase);
  const entry = status.steps![i];
  entry.state = skipped ? 'Skipped' : 'Succeeded';
  entry.startTime ??= now;
  entry.completionTime = now;
  entry.message = message;
  const next = STEP_TABLE[i + 1];
  if (!next) {
    finish(status, 'Completed', now, message);
    return;
  }
  status.phase = next.phase;
  status.message = message;
  setStep(status, i + 1);
  markRunning(status, now);
}

/** The migration is already where it should be: the remaining steps are skipped, and it completes. */
export function completeEarly(status: PodMigrationStatus, now: string, message: string, reason: EndReason): void {
  for (const entry of status.steps ?? []) {
    if (entry.state !== 'Pending' && entry.state !== 'Running') continue;
    entry.state = 'Skipped';
    entry.startTime ??= now;
    entry.completionTime = now;
    entry.message = message;
  }
  status.reason = reason;
  finish(status, 'Completed', now, message);
}

/** A message about the current step while it waits. */
export function waiting(status: PodMigrationStatus, message: string): void {
  status.message = message;
  const entry = status.steps?.[stepIndex(status.phase)];
  if (entry) entry.message = message;
}

/** The migration ends in Failed or Cancelled with a reason; the current step is marked Failed. */
export function fail(status: PodMigrationStatus, phase: 'Failed' | 'Cancelled', reason: EndReason, message: string, now: string): void {
  const entry = status.steps?.[stepIndex(status.phase)];
  if (entry && (entry.state === 'Running' || entry.state === 'Pending')) {
    entry.state = 'Failed';
    entry.completionTime = now;
    entry.message = message;
  }
  status.reason = reason;
  finish(status, phase, now, message);
}

function finish(status: PodMigrationStatus, phase: Phase, now: string, message: string): void {
  status.phase = phase;
  status.message = message;
  status.startTime ??= now;
  status.completionTime = now;
  status.durationSeconds = Math.round((Date.parse(now) - Date.parse(status.startTime)) / 100) / 10;
}

/** When the named step started (its deadlines count from there); `now` if it has not. */
export function stepStartTime(status: PodMigrationStatus, name: string, now: string): string {
  return status.steps?.find((s) => s.name === name)?.startTime ?? now;
}

/** Milliseconds left before `seconds` after `from`; negative once passed. */
export function remainingMs(from: string | undefined, seconds: number, now: string): number {
  if (!from) return seconds * 1000;
  return Date.parse(from) + seconds * 1000 - Date.parse(now);
}

/**
 * Why a migration that passed spec.timeoutSeconds before removing its source failed, from
 * what it was last seen waiting for: an eviction refused (not by a budget) names the
 * refusal; anything else is a Timeout. The message is the last observation, not a claim.
 */
export function deadlineFailure(status: PodMigrationStatus, timeoutSeconds: number): { reason: FailureReason; message: string } {
  const waitingFor = status.conditions?.find((c) => c.type === 'Reconciling')?.reason;
  const last = status.message ? `: ${status.message}` : '';
  if (waitingFor === WAITING_REASONS.EvictionRefused) {
    return {
      reason: 'SourcePodNotEvicted',
      message: `the source pod could not be evicted within spec.timeoutSeconds (${timeoutSeconds}s)${last}`,
    };
  }
  return { reason: 'Timeout', message: `the migration did not finish within spec.timeoutSeconds (${timeoutSeconds}s)${last}` };
}

/**
 * What undoing a failed or cancelled migration left: `ok` when the source pod runs and
 * nothing the migration made remains (condition RolledBack=True), otherwise what was kept
 * or could not be restored, and why (RolledBack=False). Recorded once.
 */
export interface RollbackOutcome {
  ok: boolean;
  reason: RollbackReason;
  message: string;
}

export function recordRollback(status: PodMigrationStatus, outcome: RollbackOutcome, generation: number | undefined, now: string): void {
  if (status.conditions?.some((c) => c.type === 'RolledBack')) return;
  status.message = `${status.message ?? ''}; ${outcome.message}`.replace(/^; /, '');
  status.conditions = [
    ...(status.conditions ?? []),
    {
      type: 'RolledBack',
      status: outcome.ok ? 'True' : 'False',
      reason: outcome.reason,
      message: outcome.message,
      observedGeneration: generation,
      lastTransitionTime: now,
    },
  ];
}

/**
 * Ready / Reconciling / Stalled, as kstatus reads them. lastTransitionTime only moves
 * when a condition's status changes. While a step is blocked, Reconciling carries the
 * reason (for example EvictionBlocked). Other conditions (RolledBack) are kept as they are.
 */
export function setConditions(status: PodMigrationStatus, generation: number | undefined, now: string, waitingReason?: string): void {
  const phase = status.phase ?? 'Pending';
  status.conditions = kstatusConditions(status.conditions, {
    phase,
    reason: status.reason || phase,
    message: status.message ?? '',
    done: phase === 'Completed' ? 'Completed' : undefined,
    stalled: phase === 'Failed' || phase === 'Cancelled',
    waitingReason,
    generation,
    now,
  });
  status.observedGeneration = generation;
}

/**
 * kstatus's three conditions for a resource that works towards an end: Ready (True once
 * `done`, with that reason), Reconciling (True while neither done nor stalled), Stalled
 * (True once it has ended without getting there). A condition keeps its transition time
 * while its status holds; conditions of other types are kept.
 */
export function kstatusConditions(
  conditions: readonly Condition[] | undefined,
  o: {
    phase: string;
    reason: string;
    message: string;
    done?: string;
    stalled: boolean;
    waitingReason?: string;
    generation?: number;
    now: string;
  },
): Condition[] {
  const { phase, reason, message, done, stalled } = o;
  const wanted: Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>[] = [
    { type: 'Ready', status: done ? 'True' : 'False', reason: done ?? reason, message },
    { type: 'Reconciling', status: !done && !stalled ? 'True' : 'False', reason: o.waitingReason ?? phase, message },
    { type: 'Stalled', status: stalled ? 'True' : 'False', reason: stalled ? reason : phase, message },
  ];
  const old = new Map((conditions ?? []).map((c) => [c.type, c]));
  const others = (conditions ?? []).filter((c) => !wanted.some((w) => w.type === c.type));
  return [
    ...wanted.map((c) => {
      const prev = old.get(c.type);
      const lastTransitionTime = prev && prev.status === c.status ? prev.lastTransitionTime : o.now;
      return { ...c, observedGeneration: o.generation, lastTransitionTime };
    }),
    ...others,
  ];
}

/** Step transitions between two statuses, for Events: [step name, new state, message]. */
export function stepTransitions(before: PodMigrationStatus | undefined, after: PodMigrationStatus): StepStatus[] {
  const prev = new Map((before?.steps ?? []).map((s) => [s.name, s.state]));
  const out: StepStatus[] = [];
  for (const s of after.steps ?? []) {
    const was = prev.get(s.name) ?? 'Pending';
    if (was === s.state) continue;
    // A step that started and ended within one write gets both events.
    if (was === 'Pending' && (s.state === 'Succeeded' || s.state === 'Failed')) out.push({ ...s, state: 'Running', message: undefined });
    out.push(s);
  }
  return out;
}
