import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { evictionWouldFailJob, isReplacement, jobWouldNotRecreate, ownerKind, replacementOf, statefulSetWouldNotRecreate } from './owners';

const job = (spec: Partial<NonNullable<V1Job['spec']>>, status: V1Job['status'] = {}): V1Job => ({
  metadata: { name: 'train' },
  spec: { template: {}, ...spec },
  status,
});
const pod = (annotations: Record<string, string> = {}, name = 'train-abc'): V1Pod => ({ metadata: { name, annotations } });
const ignore = { podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] }] } };

describe('evictionWouldFailJob', () => {
  it('lets a Job move its pod when its budget takes the eviction and a removal of the replacement', () => {
    expect(evictionWouldFailJob(job({ backoffLimit: 2 }, { failed: 0 }), pod())).toBeUndefined();
    expect(evictionWouldFailJob(job({}, { failed: 4 }), pod())).toBeUndefined(); // backoffLimit defaults to 6
  });
  it('refuses when it would not', () => {
    expect(evictionWouldFailJob(job({ backoffLimit: 1 }), pod())).toMatch(/failures 1 and 2 of Job train, whose backoffLimit is 1/);
    expect(evictionWouldFailJob(job({ backoffLimit: 3 }, { failed: 2 }), pod())).toMatch(/failures 3 and 4/);
  });
  it('lets a pod failure policy that ignores disruptions absorb it, whatever the budget', () => {
    expect(evictionWouldFailJob(job({ backoffLimit: 0, ...ignore }), pod())).toBeUndefined();
  });
  it('refuses a policy that would fail the Job or the index on an eviction, by condition or by exit code', () => {
    const failOn = (rule: object) => job({ backoffLimit: 10, podFailurePolicy: { rules: [rule as never] } });
    expect(evictionWouldFailJob(failOn({ action: 'FailJob', onPodConditions: [{ type: 'DisruptionTarget' }] }), pod())).toMatch(
      /would fail the Job on the DisruptionTarget condition/,
    );
    expect(evictionWouldFailJob(failOn({ action: 'FailIndex', onExitCodes: { operator: 'NotIn', values: [0] } }), pod())).toMatch(
      /fail the pod's index on exit codes NotIn \[0\]/,
    );
    expect(evictionWouldFailJob(failOn({ action: 'FailJob', onExitCodes: { operator: 'In', values: [42] } }), pod())).toBeUndefined();
  });
  it('counts per index with backoffLimitPerIndex', () => {
    const indexed = job({ completionMode: 'Indexed', backoffLimitPerIndex: 2 });
    const p = (n: number) =>
      pod({ 'batch.kubernetes.io/job-index-failure-count': String(n), 'batch.kubernetes.io/job-completion-index': '3' });
    expect(evictionWouldFailJob(indexed, p(0))).toBeUndefined();
    expect(evictionWouldFailJob(indexed, p(1))).toMatch(/failures 2 and 3 of index 3 of Job train, whose backoffLimitPerIndex is 2/);
  });
});

describe('owners that would not recreate the pod', () => {
  it('knows a Job that ended or is suspended', () => {
    expect(jobWouldNotRecreate(job({}, { conditions: [{ type: 'Complete', status: 'True' }] }))).toMatch(/has ended \(Complete\)/);
    expect(jobWouldNotRecreate(job({ suspend: true }))).toMatch(/suspended/);
    expect(jobWouldNotRecreate(job({}))).toBeUndefined();
  });
  it('knows a StatefulSet that no longer counts the ordinal', () => {
    const set = { metadata: { name: 'db' }, spec: { replicas: 2, selector: {}, serviceName: 'db', template: {} } };
    expect(statefulSetWouldNotRecreate(set, pod({}, 'db-1'))).toBeUndefined();
    expect(statefulSetWouldNotRecreate(set, pod({}, 'db-2'))).toMatch(/has 2 replicas from ordinal 0: it would not recreate pod db-2/);
    expect(statefulSetWouldNotRecreate({ ...set, spec: { ...set.spec, ordinals: { start: 5 } } }, pod({}, 'db-5'))).toBeUndefined();
  });
  it('names kinds as group/Kind', () => {
    expect(ownerKind({ apiVersion: 'apps/v1', kind: 'StatefulSet' })).toBe('apps/StatefulSet');
    expect(ownerKind({ apiVersion: 'v1', kind: 'ConfigMap' })).toBe('/ConfigMap');
    expect(ownerKind({ apiVersion: 'kubeflow.org/v1', kind: 'PyTorchJob' })).toBe('kubeflow.org/PyTorchJob');
  });
});

describe('the replacement', () => {
  const sts = { apiVersion: 'apps/v1', kind: 'StatefulSet' };
  const jobRef = { apiVersion: 'batch/v1', kind: 'Job' };
  it('of a StatefulSet (or a custom owner) is the pod of the same name', () => {
    const r = replacementOf(sts, pod({}, 'db-0'));
    expect(r).toEqual({ name: 'db-0' });
    expect(isReplacement(pod({}, 'db-0'), r as never)).toBe(true);
    expect(isReplacement(pod({}, 'db-1'), r as never)).toBe(false);
  });
  it("of an Indexed Job is its index's next pod; of a one-pod Job its next pod; of any other Job, not known", () => {
    const indexed = replacementOf(
      jobRef,
      pod({ 'batch.kubernetes.io/job-completion-index': '2' }),
      job({ completionMode: 'Indexed', parallelism: 4 }),
    );
    expect(indexed).toEqual({ completionIndex: '2' });
    expect(isReplacement(pod({ 'batch.kubernetes.io/job-completion-index': '2' }, 'x'), indexed as never)).toBe(true);
    expect(isReplacement(pod({ 'batch.kubernetes.io/job-completion-index': '1' }, 'x'), indexed as never)).toBe(false);
    expect(replacementOf(jobRef, pod(), job({ parallelism: 1 }))).toEqual({ onlyNewPod: true });
    expect(replacementOf(jobRef, pod(), job({ parallelism: 3 }))).toEqual({
      unknown: expect.stringMatching(/runs up to 3 pods at once and is not Indexed/),
    });
  });
});
