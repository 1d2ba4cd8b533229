import type { PodMigration } from '../api/types';
import { RequestError, parseCreate, parseId, state, summarize, toMigration, toPodMigration } from './translate';

const ok = { pod_name: 'trainer', pod_namespace: 'ml', source_node: 'node-1', target_node: 'node-2' };
const refusal = (body: unknown) => {
  try {
    parseCreate(body);
  } catch (e) {
    return e instanceof RequestError ? [e.status, e.field, e.message] : e;
  }
  return 'accepted';
};

describe('parseCreate', () => {
  it('accepts the original body, with the original defaults', () => {
    expect(toPodMigration(parseCreate(ok)).spec).toEqual({
      podName: 'trainer',
      sourceNode: 'node-1',
      targetNode: 'node-2',
      preservePV: false,
      timeoutSeconds: 600,
    });
    expect(toPodMigration(parseCreate({ ...ok, preserve_pv: true, timeout: 0 })).spec).toMatchObject({
      preservePV: true,
      timeoutSeconds: 600,
    });
    expect(toPodMigration(parseCreate({ ...ok, timeout: 90 })).metadata).toMatchObject({ generateName: 'migration-', namespace: 'ml' });
  });

  it.each([
    [{ ...ok, pod_name: undefined }, 'pod_name', /pod_name is required/],
    [{ ...ok, target_node: '' }, 'target_node', /target_node is required/],
    [{ ...ok, source_node: 7 }, 'source_node', /must be a string/],
    [{ ...ok, target_node: 'node-1' }, 'target_node', /must differ from source_node/],
    [{ ...ok, timeout: -1 }, 'timeout', /0 or more/],
    [{ ...ok, timeout: 1.5 }, 'timeout', /whole number/],
    [{ ...ok, preserve_pv: 'yes' }, 'preserve_pv', /true or false/],
    [{ ...ok, podName: 'x' }, 'podName', /unknown field "podName"/],
    [{ ...ok, pod_namespace: 'Not_A_Namespace' }, 'pod_namespace', /not a valid namespace name/],
    [{ ...ok, pod_name: 'a/b' }, 'pod_name', /not a valid name/],
  ])('refuses %j naming the field', (body, field, message) => {
    const [status, f, m] = refusal(body) as [number, string, string];
    expect([status, f]).toEqual([400, field]);
    expect(m).toMatch(message);
  });

  it('refuses what is not an object', () => {
    expect(refusal([ok])).toEqual([400, undefined, 'the body must be a JSON object']);
    expect(refusal('x')).toEqual([400, undefined, 'the body must be a JSON object']);
  });
});

describe('ids and states', () => {
  it('reads <namespace>/<name> from one or two path segments', () => {
    expect(parseId(['ml', 'migration-abc'])).toEqual({ namespace: 'ml', name: 'migration-abc' });
    expect(parseId(['ml%2Fmigration-abc'])).toEqual({ namespace: 'ml', name: 'migration-abc' });
    expect(() => parseId(['migration-abc'])).toThrow(/not a migration id/);
    expect(() => parseId(['ml', 'Bad Name'])).toThrow(/not a migration id/);
  });

  const pm = (phase: string, extra: object = {}) =>
    ({ metadata: { namespace: 'ml', name: 'm' }, spec: ok, status: { phase, ...extra } }) as unknown as PodMigration;

  it('maps phases to the original vocabulary', () => {
    expect(['Pending', 'CapturingState', 'DeletingSourcePod', 'Completed', 'Failed', 'Cancelled'].map((p) => state(pm(p)))).toEqual([
      'pending',
      'running',
      'running',
      'completed',
      'failed',
      'cancelled',
    ]);
  });

  it('sums up from the records, not from memory', () => {
    const done = (d: number, cpu: number) =>
      pm('Completed', { durationSeconds: d, resources: { savings: { cpuPercent: cpu, memoryPercent: 50 } } });
    expect(summarize([done(2, 30), done(4, 10), pm('Failed'), pm('Cancelled'), pm('CreatingTargetPod')])).toEqual({
      total_migrations: 5,
      pending_migrations: 0,
      running_migrations: 1,
      completed_migrations: 2,
      failed_migrations: 1,
      cancelled_migrations: 1,
      average_duration_seconds: 3,
      average_cpu_savings_percent: 20,
      average_memory_savings_percent: 50,
    });
    expect(toMigration(done(2, 30))).toMatchObject({
      migration_id: 'ml/m',
      status: 'completed',
      resources: { savings: { cpu_percent: 30 } },
    });
  });
});
