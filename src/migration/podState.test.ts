import type { V1Pod } from '@kubernetes/client-node';
import { captureContainers, targetPodState } from './podState';

const pod = (status: V1Pod['status'], extra: Partial<V1Pod['metadata']> = {}): V1Pod => ({
  metadata: { name: 'p', ...extra },
  spec: { containers: [{ name: 'a', image: 'a' }, { name: 'b', image: 'b' }, { name: 'c', image: 'c' }] },
  status,
});

describe('captureContainers', () => {
  it('records state, reason and restarts, and migrates only running containers', () => {
    const p = pod({
      phase: 'Running',
      containerStatuses: [
        { name: 'a', image: 'a', imageID: '', ready: true, restartCount: 1, state: { running: {} } },
        { name: 'b', image: 'b', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } },
        { name: 'c', image: 'c', imageID: '', ready: false, restartCount: 7, state: { waiting: { reason: 'CrashLoopBackOff' } } },
      ],
    });
    expect(captureContainers(p)).toEqual([
      { name: 'a', state: 'running', restartCount: 1, migrated: true },
      { name: 'b', state: 'terminated', reason: 'Completed', restartCount: 0, migrated: false },
      { name: 'c', state: 'waiting', reason: 'CrashLoopBackOff', restartCount: 7, migrated: false },
    ]);
  });
  it('treats a container without status as waiting', () => {
    expect(captureContainers(pod({ phase: 'Pending' }))[0]).toEqual({ name: 'a', state: 'waiting', restartCount: 0, migrated: false });
  });
});

describe('targetPodState', () => {
  it('is ready only with the Ready condition, not merely Running', () => {
    expect(targetPodState(pod({ phase: 'Running' })).kind).toBe('starting');
    expect(targetPodState(pod({ phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] })).kind).toBe('ready');
  });
  it.each([
    ['a failed pod', pod({ phase: 'Failed', reason: 'OutOfcpu' }), 'TargetPodFailed'],
    ['a pod unschedulable for 5 s', pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', lastTransitionTime: new Date(Date.now() - 5_000) }] }), 'TargetPodUnschedulable'],
    ['an image that cannot be pulled', pod({ phase: 'Pending', containerStatuses: [{ name: 'a', image: 'a', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff' } } }] }), 'TargetPodStartFailed'],
    ['a pod being deleted', pod({ phase: 'Running' }, { deletionTimestamp: new Date() }), 'TargetPodDeleted'],
  ])('fails fast on %s', (_what, p, reason) => {
    const s = targetPodState(p);
    expect(s).toMatchObject({ kind: 'failed', reason });
  });
  it('gives the scheduler a few seconds before taking Unschedulable as its answer (a claim not bound yet)', () => {
    const p = pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: 'pod has unbound immediate PersistentVolumeClaims', lastTransitionTime: new Date(Date.now() - 1_000) }] });
    const s = targetPodState(p);
    expect(s).toMatchObject({ kind: 'starting', message: expect.stringMatching(/unbound immediate PersistentVolumeClaims/) });
    expect(targetPodState(p, Date.now() + 4_100)).toMatchObject({ kind: 'failed', reason: 'TargetPodUnschedulable' });
  });
  it('keeps waiting while containers are being created', () => {
    const p = pod({ phase: 'Pending', containerStatuses: [{ name: 'a', image: 'a', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } }] });
    expect(targetPodState(p).kind).toBe('starting');
  });
});
