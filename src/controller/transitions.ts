// What a status write recorded, told to the outside: metrics for steps and migrations that
// ended, and Events on the PodMigration (kubectl describe).
import type { PodMigration, PodMigrationStatus } from '../api/types';
import type { Metrics } from '../metrics';
import { fromFigures, parseQuantity } from '../migration/resources';
import { STEP_TABLE, TOTAL_STEPS, isTerminal, stepTransitions } from '../migration/status';
import type { EventRecorder } from './events';

/** Metrics for what this status write recorded: steps that ended, a migration that ended. */
export function observe(m: Metrics, namespace: string, before: PodMigrationStatus, after: PodMigrationStatus): void {
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
    m.reclaimedCpu.inc({ namespace }, Math.max(o.cpu - n.cpu, 0));
    m.reclaimedMemory.inc({ namespace }, Math.max(o.memory - n.memory, 0));
    for (const [resource, amount] of Object.entries(after.resources?.savings?.freed ?? {}))
      m.devicesSaved.inc({ resource }, parseQuantity(amount));
  }
}

/**
 * One Event per step as it ends (when it started is in status.steps): few enough that
 * kubectl describe, which sorts by whole seconds, keeps them in their (name) order. The
 * step that ends the migration and the migration's end are one Event, with the
 * migration's reason.
 */
export function recordEvents(events: EventRecorder, pm: PodMigration, before: PodMigrationStatus, after: PodMigrationStatus): void {
  const out: { type: 'Normal' | 'Warning'; reason: string; note: string; failed: boolean }[] = [];
  for (const s of stepTransitions(before, after)) {
    if (s.state !== 'Succeeded' && s.state !== 'Skipped' && s.state !== 'Failed') continue;
    const n = STEP_TABLE.findIndex((p) => p.name === s.name) + 1;
    const verb = s.state === 'Failed' && after.phase === 'Cancelled' ? 'cancelled' : s.state.toLowerCase();
    const failed = s.state === 'Failed';
    out.push({
      type: failed ? 'Warning' : 'Normal',
      reason: `Step${s.state}`,
      note: `step ${n}/${TOTAL_STEPS} ${s.name} ${verb}: ${s.message ?? ''}`,
      failed,
    });
  }
  if (after.phase !== before.phase && isTerminal(after.phase)) {
    const completed = after.phase === 'Completed';
    const end = {
      type: completed ? ('Normal' as const) : ('Warning' as const),
      reason: completed ? 'MigrationCompleted' : (after.reason ?? after.phase!),
    };
    const last = out.at(-1);
    if (last && last.failed !== completed) Object.assign(last, end);
    else out.push({ ...end, note: after.message ?? after.phase!, failed: !completed });
  }
  for (const e of out) events.record(pm, e.type, e.reason, e.note);
}
