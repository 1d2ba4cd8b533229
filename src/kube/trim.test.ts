import type { V1Pod } from '@kubernetes/client-node';
import { FINALIZER, type PodMigration } from '../api/types';
import { podRequests } from '../migration/resources';
import { targetPodState } from '../migration/podState';
import { trimMigration, trimPod } from './trim';

const managedFields = [{ manager: 'kubectl', operation: 'Apply', fieldsV1: { 'f:spec': {} } }];

function record(phase: string, finalizers?: string[]): PodMigration {
  return {
    apiVersion: 'migration.ai-storage.io/v1alpha1',
    kind: 'PodMigration',
    metadata: {
      name: 'm',
      namespace: 'ns',
      uid: 'u',
      resourceVersion: '7',
      generation: 1,
      finalizers,
      managedFields,
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":true}', 'migration.ai-storage.io/cancel': 'true' },
    },
    spec: { podName: 'p', sourceNode: 'a', targetNode: 'b' },
    status: {
      phase,
      reason: 'R',
      observedGeneration: 1,
      completionTime: '2026-01-01T00:00:00Z',
      sourcePod: { name: 'p', uid: 'x', node: 'a' },
      steps: [{ name: 'CaptureState', state: 'Succeeded' }],
    },
  } as unknown as PodMigration;
}

describe('trimMigration', () => {
  it('drops managed fields and annotations that are not the operator’s', () => {
    const t = trimMigration(record('CreatingTargetPod', [FINALIZER]));
    expect(t.metadata).toEqual({
      name: 'm',
      namespace: 'ns',
      uid: 'u',
      resourceVersion: '7',
      generation: 1,
      finalizers: [FINALIZER],
      annotations: { 'migration.ai-storage.io/cancel': 'true' },
    });
    expect(t.status).toEqual(record('CreatingTargetPod').status); // in flight: all of it
  });

  it('keeps a summary of the status of a record that has ended and holds no finalizer', () => {
    expect(trimMigration(record('Completed')).status).toEqual({
      phase: 'Completed',
      reason: 'R',
      observedGeneration: 1,
      completionTime: '2026-01-01T00:00:00Z',
    });
    expect(trimMigration(record('Failed', [FINALIZER])).status?.steps).toHaveLength(1); // a rollback may still read it
  });
});

describe('trimPod', () => {
  const pod: V1Pod = {
    metadata: {
      name: 'c',
      namespace: 'ns',
      uid: 'u',
      resourceVersion: '3',
      labels: { app: 'x' },
      annotations: { 'migration.ai-storage.io/migration-uid': 'm', other: 'y' },
      managedFields,
    } as V1Pod['metadata'],
    spec: {
      nodeName: 'b',
      containers: [{ name: 'main', image: 'i', env: [{ name: 'E', value: 'v' }], resources: { requests: { cpu: '500m', memory: '1Gi' } } }],
      initContainers: [{ name: 'side', image: 'i', restartPolicy: 'Always', resources: { requests: { cpu: '100m' } } }],
      overhead: { cpu: '10m' },
      volumes: [{ name: 'v', emptyDir: {} }],
    },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [], podIP: '10.0.0.1' },
  };

  it('keeps what the steps read: identity, labels, our annotations, requests, state', () => {
    const t = trimPod(pod);
    expect(t.metadata).toMatchObject({
      name: 'c',
      uid: 'u',
      resourceVersion: '3',
      labels: { app: 'x' },
      annotations: { 'migration.ai-storage.io/migration-uid': 'm' },
    });
    expect(t.metadata).not.toHaveProperty('managedFields');
    expect(t.spec?.containers[0]).toEqual({
      name: 'main',
      resources: { requests: { cpu: '500m', memory: '1Gi' } },
      restartPolicy: undefined,
    });
    expect(t.spec).not.toHaveProperty('volumes');
    expect(podRequests(t.spec!)).toEqual(podRequests(pod.spec!));
    expect(targetPodState(t)).toEqual(targetPodState(pod));
  });
});
