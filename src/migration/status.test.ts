import type { PodMigrationStatus } from '../api/types';
import {
  advance,
  begin,
  canRollBack,
  deadlineFailure,
  fail,
  recordRollback,
  remainingMs,
  setConditions,
  stepIndex,
  stepTransitions,
  waiting,
} from './status';

const t0 = '2026-01-01T00:00:00.000Z';
const t1 = '2026-01-01T00:00:01.500Z';
const t2 = '2026-01-01T00:00:03.000Z';

describe('phase choice', () => {
  it('walks the five steps in order and completes', () => {
    const s: PodMigrationStatus = {};
    begin(s, t0);
    expect([s.phase, s.step, s.progress]).toEqual(['CapturingState', 1, '1/5']);
    const seen = [s.phase];
    for (let i = 0; i < 5; i++) {
      advance(s, t1, `step ${i + 1} done`, i === 1);
      seen.push(s.phase);
    }
    expect(seen).toEqual(['CapturingState', 'Checkpointing', 'CreatingTargetPod', 'DeletingSourcePod', 'CollectingMetrics', 'Completed']);
    expect(s.steps!.map((x) => x.state)).toEqual(['Succeeded', 'Skipped', 'Succeeded', 'Succeeded', 'Succeeded']);
    expect(s.durationSeconds).toBe(1.5);
    expect(s.completionTime).toBe(t1);
  });

  it('marks the next step Running as the previous one ends', () => {
    const s: PodMigrationStatus = {};
    begin(s, t0);
    advance(s, t1, 'captured');
    expect(s.steps![0]).toMatchObject({ state: 'Succeeded', startTime: t0, completionTime: t1, message: 'captured' });
    expect(s.steps![1]).toMatchObject({ state: 'Running', startTime: t1 });
  });

  it('fails the current step and the migration with a reason', () => {
    const s: PodMigrationStatus = {};
    begin(s, t0);
    advance(s, t1, 'captured');
    fail(s, 'Failed', 'Timeout', 'too slow', t2);
    expect(s).toMatchObject({ phase: 'Failed', reason: 'Timeout', message: 'too slow', durationSeconds: 3 });
    expect(s.steps![1]).toMatchObject({ state: 'Failed', completionTime: t2 });
  });

  it('rolls back only until the source pod is removed', () => {
    expect(['CapturingState', 'Checkpointing', 'CreatingTargetPod', 'DeletingSourcePod'].every((p) => canRollBack(p as never))).toBe(true);
    expect(canRollBack('CollectingMetrics')).toBe(false);
    expect(canRollBack('Completed')).toBe(false);
    expect(stepIndex('Pending')).toBe(-1);
  });

  it('counts deadlines from the persisted time', () => {
    expect(remainingMs(t0, 2, t1)).toBe(500);
    expect(remainingMs(t0, 1, t1)).toBe(-500);
  });
});

describe('conditions', () => {
  it('sets Ready/Reconciling/Stalled per phase and moves lastTransitionTime only on change', () => {
    const s: PodMigrationStatus = {};
    begin(s, t0);
    setConditions(s, 1, t0);
    const byType = () => Object.fromEntries(s.conditions!.map((c) => [c.type, c]));
    expect(byType().Reconciling).toMatchObject({ status: 'True', lastTransitionTime: t0, observedGeneration: 1 });
    expect(byType().Ready.status).toBe('False');
    waiting(s, 'still going');
    setConditions(s, 1, t1);
    expect(byType().Reconciling.lastTransitionTime).toBe(t0);
    expect(byType().Reconciling.message).toBe('still going');
    fail(s, 'Failed', 'PodNotFound', 'gone', t2);
    setConditions(s, 1, t2);
    expect(byType().Stalled).toMatchObject({ status: 'True', reason: 'PodNotFound', lastTransitionTime: t2 });
    expect(byType().Reconciling).toMatchObject({ status: 'False', lastTransitionTime: t2 });
    expect(byType().Ready).toMatchObject({ status: 'False', reason: 'PodNotFound', lastTransitionTime: t0 });
  });
});

describe('stepTransitions', () => {
  it('reports a step that started and ended within one write as both, and a skip as a skip', () => {
    const before: PodMigrationStatus = {};
    begin(before, t0);
    expect(stepTransitions({}, before).map((s) => `${s.name}:${s.state}`)).toEqual(['CaptureState:Running']);
    const after = structuredClone(before);
    advance(after, t1, 'captured');
    advance(after, t1, 'skipped', true);
    expect(stepTransitions(before, after).map((s) => `${s.name}:${s.state}`)).toEqual([
      'CaptureState:Succeeded',
      'Checkpoint:Skipped',
      'CreateTargetPod:Running',
    ]);
  });
});

describe('deadlines and rollbacks', () => {
  const blockedBy = (reason: string, message: string): PodMigrationStatus => {
    const s: PodMigrationStatus = {};
    begin(s, t0);
    s.phase = 'DeletingSourcePod';
    waiting(s, message);
    setConditions(s, 1, t1, reason);
    return s;
  };

  it('fails a migration past its deadline with what it was last waiting for', () => {
    const budget = deadlineFailure(blockedBy('EvictionBlocked', 'eviction of source pod p is blocked: budget'), 10);
    expect(budget).toEqual({
      reason: 'Timeout',
      message: 'the migration did not finish within spec.timeoutSeconds (10s): eviction of source pod p is blocked: budget',
    });
    const refused = deadlineFailure(blockedBy('EvictionRefused', 'eviction of source pod p was refused: forbidden'), 10);
    expect(refused.reason).toBe('SourcePodNotEvicted');
    expect(refused.message).toMatch(/could not be evicted within spec\.timeoutSeconds \(10s\): eviction .* forbidden$/);
  });

  it('records what a rollback left once, and keeps that condition through later condition updates', () => {
    const s = blockedBy('EvictionBlocked', 'blocked');
    fail(s, 'Failed', 'Timeout', 'timed out', t2);
    recordRollback(s, { ok: false, reason: 'TargetPodKept', message: 'kept pod c' }, 1, t2);
    recordRollback(s, { ok: true, reason: 'SourcePodRunning', message: 'later' }, 1, t2);
    setConditions(s, 1, t2);
    expect(s.message).toBe('timed out; kept pod c');
    expect(s.conditions!.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'False', 'Timeout'],
      ['Reconciling', 'False', 'Failed'],
      ['Stalled', 'True', 'Timeout'],
      ['RolledBack', 'False', 'TargetPodKept'],
    ]);
  });
});
