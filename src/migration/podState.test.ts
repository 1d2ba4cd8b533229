import type { V1Pod } from '@kubernetes/client-node';
import { captureContainers, droppedCrashed, targetPodState } from './podState';

const pod = (status: V1Pod['status'], extra: Partial<V1Pod['metadata']> = {}): V1Pod => ({
  metadata: { name: 'p', ...extra },
  spec: {
    containers: [
      { name: 'a', image: 'a' },
      { name: 'b', image: 'b' },
      { name: 'c', image: 'c' },
    ],
  },
  status,
});

describe('captureContainers', () => {
  const status = (name: string, state: object, restartCount = 0, lastState?: object) => ({
    name,
    image: name,
    imageID: '',
    ready: false,
    restartCount,
    state,
    lastState,
  });
  const five = (statuses: object[]): V1Pod => ({
    metadata: { name: 'p' },
    spec: { containers: ['run', 'done', 'crash', 'oom', 'again'].map((n) => ({ name: n, image: n })) },
    status: { phase: 'Running', containerStatuses: statuses as never },
  });
  const p = five([
    status('run', { running: {} }, 1),
    status('done', { terminated: { exitCode: 0, reason: 'Completed' } }),
    status('crash', { waiting: { reason: 'CrashLoopBackOff' } }, 7, { terminated: { exitCode: 1, reason: 'Error' } }),
    status('oom', { terminated: { exitCode: 137, reason: 'OOMKilled' } }),
    // restartPolicy Always: a helper that exited 0 waits to be restarted
    status('again', { waiting: { reason: 'CrashLoopBackOff' } }, 3, { terminated: { exitCode: 0, reason: 'Completed' } }),
  ]);

  it('leaves behind only finished work: containers that exited 0', () => {
    expect(captureContainers(p)).toEqual([
      { name: 'run', state: 'running', restartCount: 1, migrated: true },
      { name: 'done', state: 'terminated', reason: 'Completed', exitCode: 0, restartCount: 0, migrated: false },
      { name: 'crash', state: 'waiting', reason: 'CrashLoopBackOff', exitCode: 1, restartCount: 7, migrated: true },
      { name: 'oom', state: 'terminated', reason: 'OOMKilled', exitCode: 137, restartCount: 0, migrated: true },
      { name: 'again', state: 'waiting', reason: 'CrashLoopBackOff', exitCode: 0, restartCount: 3, migrated: false },
    ]);
  });

  it('leaves crashed containers behind too when asked to, and never a running one', () => {
    const containers = captureContainers(p, true);
    expect(containers.map((c) => [c.name, c.migrated])).toEqual([
      ['run', true],
      ['done', false],
      ['crash', false],
      ['oom', false],
      ['again', false],
    ]);
    expect(containers.filter(droppedCrashed).map((c) => c.name)).toEqual(['crash', 'oom']);
    const restarted = five([status('run', { running: {} }, 4, { terminated: { exitCode: 1 } })]);
    expect(captureContainers(restarted, true)[0]).toMatchObject({ name: 'run', migrated: true });
  });

  it('keeps a container that has not started yet', () => {
    expect(captureContainers(pod({ phase: 'Pending' }))[0]).toEqual({ name: 'a', state: 'waiting', restartCount: 0, migrated: true });
  });
});

describe('targetPodState', () => {
  it('is ready only with the Ready condition, not merely Running', () => {
    expect(targetPodState(pod({ phase: 'Running' })).kind).toBe('starting');
    expect(targetPodState(pod({ phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] })).kind).toBe('ready');
  });
  it.each([
    ['a failed pod', pod({ phase: 'Failed', reason: 'OutOfcpu' }), 'TargetPodFailed'],
    [
      'a pod unschedulable for 5 s',
      pod({
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', lastTransitionTime: new Date(Date.now() - 5_000) }],
      }),
      'TargetPodUnschedulable',
    ],
    [
      'an image that cannot be pulled',
      pod({
        phase: 'Pending',
        containerStatuses: [
          { name: 'a', image: 'a', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff' } } },
        ],
      }),
      'TargetPodStartFailed',
    ],
    ['a pod being deleted', pod({ phase: 'Running' }, { deletionTimestamp: new Date() }), 'TargetPodDeleted'],
  ])('fails fast on %s', (_what, p, reason) => {
    const s = targetPodState(p);
    expect(s).toMatchObject({ kind: 'failed', reason });
  });
  it('gives the scheduler a few seconds before taking Unschedulable as its answer', () => {
    const p = pod({
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: '0/3 nodes are available: 1 Insufficient cpu.',
          lastTransitionTime: new Date(Date.now() - 1_000),
        },
      ],
    });
    expect(targetPodState(p)).toMatchObject({ kind: 'starting', message: expect.stringMatching(/Insufficient cpu/) });
    expect(targetPodState(p, Date.now() + 4_100)).toMatchObject({ kind: 'failed', reason: 'TargetPodUnschedulable' });
  });
  it('waits, within the ready deadline, for what passes by itself: a claim not bound yet, a preemption under way', () => {
    const unbound = pod({
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: '0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.',
          lastTransitionTime: new Date(Date.now() - 60_000),
        },
      ],
    });
    expect(targetPodState(unbound)).toMatchObject({
      kind: 'starting',
      message: expect.stringMatching(/unbound immediate PersistentVolumeClaims.*passes by itself/),
    });
    const nominated = pod({
      phase: 'Pending',
      nominatedNodeName: 'node-2',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: '0/3 nodes are available: 1 Insufficient nvidia.com/gpu.',
          lastTransitionTime: new Date(Date.now() - 60_000),
        },
      ],
    });
    expect(targetPodState(nominated)).toMatchObject({ kind: 'starting', message: expect.stringMatching(/nominated to node node-2/) });
  });
  it('keeps waiting while containers are being created', () => {
    const p = pod({
      phase: 'Pending',
      containerStatuses: [
        { name: 'a', image: 'a', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } },
      ],
    });
    expect(targetPodState(p).kind).toBe('starting');
  });
});
